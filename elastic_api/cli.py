"""`elastic-api serve | user … | image …`: the operator's command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from elastic_api import config as configuration
from elastic_api import installation as installations
from elastic_api.app import create_app
from elastic_api.config import Config, parse_listen
from elastic_api.errors import ConfigError, ElasticError
from elastic_api.http.access_log import LINE_FORMAT
from elastic_api.service.users import UserService
from elastic_api.storage import Storage
from elastic_api.store import Store
from elastic_api.store.sqlite import SqliteStore


def make_store(config: Config, *, reserve: bool = False) -> Store:
    """The store the config names: PostgreSQL at database_url, else SQLite in the data directory
    (`reserve`: with its full-disk reserve file, which the server keeps and commands do not)."""
    if config.database_url:
        from elastic_api.store.postgres import PostgresStore

        return PostgresStore(config.database_url, pool_size=config.database_pool_size)
    return SqliteStore(
        config.db_path,
        reserve=config.db_reserve if reserve else 0,
        inline_rows=config.db_inline_read_rows,
        cached_rows=config.db_cached_rows,
    )


def make_storage(config: Config) -> Storage:
    from elastic_api.storage.pool import Pool

    return Pool(
        config.pool_dir,
        config.images_dir,
        chunk=config.stream_chunk,
        buffer=config.write_buffer,
        export_idle=config.qcow2_export_idle,
        luks_lanes=config.luks_lanes,
        storage_timeout=config.storage_timeout,
    )


def serve(config: Config, installation: str, listen: str | None) -> int:
    host, port = parse_listen(listen or config.listen)
    from elastic_api.hypervisor.libvirt import LibvirtHypervisor

    app = create_app(
        config,
        store=make_store(config, reserve=True),
        storage=make_storage(config),
        hypervisor=LibvirtHypervisor.from_config(config, installation),
    )
    from elastic_api.http.access_log import batched_access_log
    from elastic_api.http.server import serve as serve_http

    def ready(site: object) -> None:
        # What start-up made lives as long as the process: frozen, no collection walks it again.
        gc.collect()
        gc.freeze()
        gc.set_threshold(config.gc_threshold, *gc.get_threshold()[1:])
        logging.getLogger(__name__).info(
            "elastic-api listening on %s:%d, data in %s, installation %s",
            host,
            port,
            config.data_dir.resolve(),
            installation,
        )

    with batched_access_log(sys.stderr):
        asyncio.run(serve_http(app, config, host, port, ready))
    return 0


async def user_create(config: Config, name: str) -> int:
    store = make_store(config)
    await store.open()
    try:
        user, secret = await UserService(store).create(name)
    finally:
        await store.close()
    print(f"user {user}\nsecret {secret}")
    return 0


async def token(config: Config, action: str, subject: str, group: str | None) -> int:
    """`user token create USER [--group NAME]` prints `token TOKEN`; `list USER` prints one
    `token HINT… created TIME [group NAME]` line per token; `revoke TOKEN`."""
    from elastic_api.service.tokens import TokenService, parse_group_option

    store = make_store(config)
    await store.open()
    try:
        service = TokenService(
            store, UserService(store), config.token_key_path, login_seconds=config.login_token_seconds
        )
        if action == "create":
            lines = [f"token {await service.create(subject, parse_group_option(group))}"]
        elif action == "list":
            lines = [
                f"token {t.hint}... created {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t.created / 1e9))}"
                + (f" group {t.group}" if t.group else "")
                for t in await service.list(subject)
            ]
        else:
            await service.revoke(subject)
            lines = ["revoked"]
    finally:
        await store.close()
    if lines:
        print("\n".join(lines))
    return 0


async def quota(config: Config, user: str, words: Sequence[str]) -> int:
    from elastic_api.service.quotas import QuotaService

    store = make_store(config)
    await store.open()
    try:
        service = QuotaService(config, store)
        lines = await (service.set(user, words) if words else service.show(user))
    finally:
        await store.close()
    print("\n".join(lines))
    return 0


async def image_add(config: Config, image: str, name: str, path: str) -> int:
    from elastic_api.service.drives import DriveService
    from elastic_api.service.imaging import ImagingService

    store, storage = make_store(config), make_storage(config)
    await store.open()
    try:
        service = ImagingService(config, store, storage, DriveService(config, store, storage))
        added = await service.add_standard(image, name, Path(path))
    finally:
        await storage.close()
        await store.close()
    print(f"drive {added.image}\nname {added.name}\nsize {added.size}")
    return 0


async def image_remove(config: Config, image: str) -> int:
    """`image remove UUID`: refused, with the drives that use it, while a drive is its clone."""
    from elastic_api.service.drives import DriveService
    from elastic_api.service.imaging import ImagingService

    store, storage = make_store(config), make_storage(config)
    await store.open()
    try:
        service = ImagingService(config, store, storage, DriveService(config, store, storage))
        removed = await service.remove_standard(image)
    finally:
        await storage.close()
        await store.close()
    print(f"removed {removed.image}")
    return 0


async def image_list(config: Config) -> int:
    store = make_store(config)
    await store.open()
    try:
        for image in await store.list_images(None, None):
            print(f"{image.image} {image.size} {image.name}")
    finally:
        await store.close()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="elastic-api", description=__doc__)
    top.add_argument("--config", help="YAML config file (default: $ELASTIC_API_CONFIG, then built-ins)")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the API server in the foreground")
    run.add_argument("--listen", help="HOST:PORT to listen on (overrides the config)")

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="create a user; prints its UUID and secret key")
    create.add_argument("--name", default="", help="a name to remember the user by")
    set_quota = user.add_parser(
        "set-quota",
        help="set a user's own limits (key=value; unlimited; default follows the config);"
        " prints KEY LIMIT USED SOURCE lines",
    )
    set_quota.add_argument("user", help="the user's UUID")
    set_quota.add_argument(
        "limits",
        nargs="+",
        metavar="key=value",
        help="drive_bytes (k/M/G/T), drives, servers, cpu (MHz), mem (MB), ips",
    )
    show_quota = user.add_parser("show-quota", help="print a user's limits and usage: KEY LIMIT USED SOURCE")
    show_quota.add_argument("user", help="the user's UUID")
    tokens = user.add_parser("token", help="manage a user's API tokens (for the ECS API at /ecs/v2)")
    token_actions = tokens.add_subparsers(dest="token_action", required=True)
    token_create = token_actions.add_parser("create", help="make an API token; prints `token TOKEN` (shown once)")
    token_create.add_argument("user", help="the user's UUID")
    token_create.add_argument("--group", help="confine the token to one of the user's groups (egNNNNNN)")
    token_list = token_actions.add_parser("list", help="list a user's tokens: the first characters, when made, group")
    token_list.add_argument("user", help="the user's UUID")
    token_revoke = token_actions.add_parser("revoke", help="revoke a token at once")
    token_revoke.add_argument("token", help="the whole token")

    image = commands.add_parser("image", help="manage the standard image library").add_subparsers(
        dest="action", required=True
    )
    add = image.add_parser("add", help="import a raw disk image file as a standard image")
    add.add_argument("--uuid", required=True, help="the image's UUID (e.g. one from the ElasticHosts docs)")
    add.add_argument("--name", required=True, help="what users see as the image's name")
    add.add_argument("path", help="a raw disk image file")
    image.add_parser("list", help="list the standard images: UUID, size, name")
    remove = image.add_parser("remove", help="remove a standard image (refused while a drive is its clone)")
    remove.add_argument("uuid", help="the image's UUID")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = configuration.load(args.config)
    except ConfigError as e:
        print(f"elastic-api: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, stream=sys.stderr, format=LINE_FORMAT)
    try:
        # Every command, not only serve: the data directory is one installation's from its first
        # use, and a damaged ID file is reported before anything acts on the data.
        installation = installations.load_or_create(config.data_dir)
        if args.command == "serve":
            return serve(config, installation, args.listen)
        if args.command == "user" and args.action == "create":
            return asyncio.run(user_create(config, args.name))
        if args.command == "user" and args.action == "token":
            subject = args.token if args.token_action == "revoke" else args.user
            return asyncio.run(token(config, args.token_action, subject, getattr(args, "group", None)))
        if args.command == "user" and args.action == "set-quota":
            return asyncio.run(quota(config, args.user, args.limits))
        if args.command == "user" and args.action == "show-quota":
            return asyncio.run(quota(config, args.user, []))
        if args.command == "image" and args.action == "add":
            return asyncio.run(image_add(config, args.uuid, args.name, args.path))
        if args.command == "image" and args.action == "remove":
            return asyncio.run(image_remove(config, args.uuid))
        if args.command == "image" and args.action == "list":
            return asyncio.run(image_list(config))
    except (ConfigError, ElasticError) as e:
        print(f"elastic-api: {e}", file=sys.stderr)
        return 2
    return 2
