"""Shared fixtures: a real app on a real SQLite store and drive pool in a temporary data dir."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from elastic_api.app import SERVICES, create_app
from elastic_api.config import Config, HostConfig
from elastic_api.store.sqlite import SqliteStore
from tests.support import libvirt_test_host


# ELASTIC_TEST_STORE=postgres runs the tests that take `store` or make an app on PostgreSQL instead
# (a database of their own on ELASTIC_TEST_POSTGRES's cluster): the whole program on the other store.
ON_POSTGRES = os.environ.get("ELASTIC_TEST_STORE") == "postgres"


@pytest.fixture
async def store(tmp_path):
    """A real SQLite store in the test's directory (its folder made by the store), or PostgreSQL
    (ELASTIC_TEST_STORE=postgres)."""
    if ON_POSTGRES:
        from elastic_api.store.postgres import PostgresStore
        from tests.postgres import fresh_database

        async with fresh_database() as url:
            pg = PostgresStore(url)
            await pg.open()
            yield pg
            await pg.close()
        return
    store = SqliteStore(tmp_path / "db" / "elastic.db")
    await store.open()
    yield store
    await store.close()


_DATABASES: dict[str, str] = {}  # data_dir: its PostgreSQL database, so a restarted app finds its rows


def _app_store(config: Config) -> Any:
    if not ON_POSTGRES:
        return SqliteStore(config.db_path, reserve=config.db_reserve)
    import atexit

    from elastic_api.store.postgres import PostgresStore
    from tests.postgres import fresh_database_sync

    if str(config.data_dir) not in _DATABASES:
        database = fresh_database_sync()
        _DATABASES[str(config.data_dir)] = database.__enter__()
        atexit.register(database.__exit__, None, None, None)  # dropped when the tests are over
    return PostgresStore(_DATABASES[str(config.data_dir)])


SYSTEM_URI = os.environ.get("ELASTIC_TEST_LIBVIRT_URI", "qemu:///system")


@pytest.fixture(scope="session")
def system_libvirt() -> str:
    """The real libvirtd's URI. When libvirtd cannot be reached the test is skipped, or fails when
    ELASTIC_TEST_REQUIRE_LIBVIRT=1 (scripts/test.sh sets it: there the real thing is not optional)."""
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as e:
        message = f"libvirtd is not reachable at {SYSTEM_URI} ({e.get_error_message()}); start it with scripts/setup.sh"
        if os.environ.get("ELASTIC_TEST_REQUIRE_LIBVIRT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return SYSTEM_URI


@pytest.fixture
def config(tmp_path: Path) -> Config:
    host = libvirt_test_host(tmp_path / "host.xml", memory_mb=4096)
    # Plain drives unless a test asks for encryption: these tests look at the pool's files (sparse
    # holes, sendfile), and the libvirt test driver has no secrets for encrypted drives' guests.
    # tests/api/test_encryption.py covers the encrypted default.
    return Config(data_dir=tmp_path / "var", hosts=(HostConfig("test", f"test://{host}"),), default_cipher="none")


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str | None:
        return self.headers.get("X-Elastic-Error")

    def props(self) -> dict[str, str]:
        return dict((line.split(" ", 1) + [""])[:2] for line in self.text.splitlines() if line)


class Api:
    """One user's view of the API through aiohttp's test client."""

    def __init__(self, client: Any, user: str, secret: str) -> None:
        self.client, self.user, self.secret = client, user, secret

    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def call(
        self,
        path: str,
        body: Any = None,
        *,
        method: str = "POST",
        as_json: bool = False,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Reply:
        send = dict(self.auth() if auth else {})
        if as_json:
            send["Accept"] = "application/json"
        if isinstance(body, dict):
            body = json.dumps(body)
            send["Content-Type"] = "application/json"
        send.update(headers or {})
        if isinstance(body, bytes) and len(body) > 1 << 20:
            body = io.BytesIO(body)  # aiohttp warns that big bytes bodies would block the loop
        # Like curl, ask for plain bodies unless a test asks for gzip (aiohttp would ask by default).
        async with self.client.request(
            method, path, data=body, headers=send, skip_auto_headers=("Accept-Encoding",)
        ) as response:
            return Reply(response.status, response.headers, await response.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call(path, method="GET", **kw)

    async def create_drive(self, size: str = "1M", name: str = "d", **keys: str) -> dict[str, str]:
        body = f"name {name}\nsize {size}\n" + "".join(f"{k} {v}\n" for k, v in keys.items())
        reply = await self.call("/drives/create", body)
        assert reply.status == 200, reply.text
        return reply.props()


@pytest.fixture
async def app(config: Config) -> Any:
    return make_app(config)


# On PostgreSQL, the node names in use per data directory (so per database): a test running two
# apps on one data directory at once runs two nodes, which must not share a name (the second
# would be refused at start); an app made after the first closed (a restart) gets its name back.
_NODES: dict[str, set[str]] = {}


def _named_node(config: Config) -> tuple[Config, Callable[[Any], Awaitable[None]] | None]:
    if not ON_POSTGRES or config.node_name:
        return config, None
    used = _NODES.setdefault(str(config.data_dir), set())
    name = next(n for n in ("", *(f"node{i}" for i in range(1, 100))) if n not in used)
    used.add(name)

    async def release(_app: Any) -> None:
        used.discard(name)

    return dataclasses.replace(config, node_name=name), release


def make_app(config: Config) -> Any:
    """The real application on a config's data dir: SQLite, the drive pool, libvirt hosts."""
    config, release = _named_node(config)
    app = _make_app(config)
    if release is not None:
        app.on_cleanup.append(release)
    return app


def _make_app(config: Config) -> Any:
    from elastic_api.hypervisor.libvirt import LibvirtHypervisor
    from elastic_api.installation import load_or_create
    from elastic_api.storage.pool import Pool

    return create_app(
        config,
        store=_app_store(config),
        storage=Pool(
            config.pool_dir,
            config.images_dir,
            chunk=config.stream_chunk,
            buffer=config.write_buffer,
            export_idle=config.qcow2_export_idle,
            luks_lanes=config.luks_lanes,
            storage_timeout=config.storage_timeout,
        ),
        hypervisor=LibvirtHypervisor.from_config(config, load_or_create(config.data_dir)),
    )


async def started_client(app: Any) -> Any:
    """A test client for an app outside pytest's loop fixtures (Hypothesis tests drive their own
    loop), served like the `serve` fixture: gzip bodies reach us raw."""
    from aiohttp.test_utils import TestClient, TestServer

    server = TestServer(app)
    await server.start_server(auto_decompress=False)  # TestServer's constructor drops server kwargs
    client = TestClient(server)
    await client.start_server()
    return client


@pytest.fixture
async def serve(aiohttp_client: Any, aiohttp_server: Any) -> Any:
    """A test client for an app, served as `elastic-api serve` does: gzip bodies reach us raw.
    (aiohttp's TestServer drops server_kwargs given to the client fixture, so start it here.)"""

    async def start(app: Any) -> Any:
        return await aiohttp_client(await aiohttp_server(app, auto_decompress=False))

    return start


@pytest.fixture
async def client(serve: Any, app: Any) -> Any:
    return await serve(app)


@pytest.fixture
async def make_user(client: Any) -> Any:
    async def make(name: str = "") -> Api:
        user, secret = await client.app[SERVICES].users.create(name)
        return Api(client, user, secret)

    return make


@pytest.fixture
async def alice(make_user: Any) -> Api:
    return await make_user("alice")


@pytest.fixture
async def bob(make_user: Any) -> Api:
    return await make_user("bob")


@pytest.fixture
async def objects(alice: Api) -> dict[str, str]:
    """One drive, one stopped server and one VLAN of alice's: an object for every route's ID."""
    drive = (await alice.create_drive())["drive"]
    server = (await alice.call("/servers/create/stopped", {"name": "s", "cpu": "1000", "mem": "64"})).props()["server"]
    vlan = (await alice.call("/resources/vlan/create", {"name": "v"})).props()["resource"]
    return {"drive": drive, "server": server, "vlan": vlan}
