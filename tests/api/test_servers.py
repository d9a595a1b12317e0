"""/servers over HTTP against libvirt test:/// hosts: lifecycle, claims, set, placement, isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.conftest import Api, make_app
from tests.support import libvirt_test_host

RANDOM = str(uuid.uuid4())


async def new_server(
    api: Api, wire: Mapping[str, str] | None = None, *, start: bool = True, as_json: bool = True, **keys: str
):
    """A server made of the defaults, `keys`, and `wire` (keys that are no Python names: `nic:0:model`)."""
    body = {"name": "web", "cpu": "1000", "mem": "256", **keys, **(wire or {})}
    reply = await api.call("/servers/create" + ("" if start else "/stopped"), body, as_json=as_json)
    assert reply.status == 200, reply.text
    return reply.json


async def until(condition, timeout=60.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_create_lists_info_and_destroy(alice):
    drive = (await alice.create_drive("10M"))["drive"]
    server = await new_server(
        alice,
        {
            "ide:0:0": drive,
            "boot": "ide:0:0",
            "nic:0:model": "virtio",
            "nic:0:dhcp": "auto",
            "vnc": "auto",
            "vnc:password": "secret",
        },
    )
    sid = server["server"]
    assert server["status"] == "active" and server["user"] == alice.user
    assert isinstance(server["started"], int) and server["boot"] == ["ide:0:0"]
    for key in (
        "rx",
        "tx",
        "rx:packets",
        "tx:packets",
        "smp:cores",
        "smp:sockets",
        "ide:0:0:read:bytes",
        "ide:0:0:write:requests",
    ):
        assert isinstance(server[key], int), key
    assert server["vnc:ip"] == "127.0.0.1"

    assert (await alice.get("/servers/list")).text == f"{sid} 1000 256\n"
    assert (await alice.get("/servers/list", as_json=True)).json == [{"server": sid, "cpu": 1000, "mem": 256}]
    assert [s["server"] for s in (await alice.get("/servers/info", as_json=True)).json] == [sid]
    info = (await alice.get(f"/servers/{sid}/info")).props()
    assert info["status"] == "active" and info["ide:0:0"] == drive

    drive_info = (await alice.get(f"/drives/{drive}/info", as_json=True)).json
    assert drive_info["claimed"] == [sid]
    assert (await alice.call(f"/drives/{drive}/destroy")).status == 409
    assert (await alice.call(f"/drives/{drive}/write/0", b"x")).status == 409

    assert (await alice.call(f"/servers/{sid}/destroy")).status == 204
    assert (await alice.get(f"/servers/{sid}/info")).status == 404
    assert (await alice.get(f"/drives/{drive}/info", as_json=True)).json["claimed"] == []
    assert (await alice.call(f"/drives/{drive}/write/0", b"x")).status == 204


async def test_persistence_decides_what_a_stop_leaves(alice):
    kept = await new_server(alice, persistent="true")
    gone = await new_server(alice)
    for server in (kept, gone):
        assert (await alice.call(f"/servers/{server['server']}/stop")).status == 204
    info = (await alice.get(f"/servers/{kept['server']}/info", as_json=True)).json
    assert info["status"] == "stopped" and "started" not in info and "rx" not in info
    assert (await alice.get(f"/servers/{gone['server']}/info")).status == 404

    assert (await alice.call(f"/servers/{kept['server']}/start")).status == 204
    assert (await alice.get(f"/servers/{kept['server']}/info", as_json=True)).json["status"] == "active"
    assert (await alice.call(f"/servers/{kept['server']}/start")).status == 409


async def test_shutdown_and_reset(alice):
    server = (await new_server(alice, persistent="true"))["server"]
    assert (await alice.call(f"/servers/{server}/reset")).status == 204
    assert (await alice.call(f"/servers/{server}/shutdown")).status == 204

    async def stopped():
        return (await alice.get(f"/servers/{server}/info", as_json=True)).json["status"] == "stopped"

    await until(stopped)
    for action in ("reset", "shutdown", "stop"):
        reply = await alice.call(f"/servers/{server}/{action}")
        assert (reply.status, reply.error) == (409, "busy")


async def test_create_stopped_then_set_anything(alice):
    drive = (await alice.create_drive("1M"))["drive"]
    server = await new_server(alice, start=False)
    sid = server["server"]
    assert server["status"] == "stopped"
    changed = await alice.call(f"/servers/{sid}/set", {"mem": "512", "block:0": drive, "user:x": "1"}, as_json=True)
    assert changed.status == 200 and changed.json["mem"] == 512 and changed.json["block:0"] == drive
    assert (await alice.get(f"/drives/{drive}/info", as_json=True)).json["claimed"] == []


async def test_live_set_takes_only_live_keys(alice):
    # cpu and vnc:password change live too; test:/// hosts cannot, so the real-guest test covers them.
    sid = (await new_server(alice, {"vnc:password": "old"}, vnc="auto"))["server"]
    reply = await alice.call(
        f"/servers/{sid}/set", {"name": "renamed", "tags": ["a"], "persistent": "true", "user:k": "v"}, as_json=True
    )
    assert reply.status == 200
    assert reply.json["name"] == "renamed" and reply.json["tags"] == ["a"] and reply.json["user:k"] == "v"
    for key, value in (("mem", "512"), ("smp", "2"), ("nic:0:model", "e1000")):
        reply = await alice.call(f"/servers/{sid}/set", {key: value})
        assert (reply.status, reply.error) == (409, "busy"), key
    assert (await alice.get(f"/servers/{sid}/info", as_json=True)).json["mem"] == 256


@pytest.mark.parametrize(
    "keys, status",
    [
        ({"ide:0:2": RANDOM}, 400),
        ({"scsi:1:0": RANDOM}, 400),
        ({"ide:0:0": RANDOM}, 404),
        ({"vnc:password": "123456789"}, 400),
        ({"nic:0:model": "ne2k"}, 400),
        ({"nic:0:model": "e1000", "nic:0:mac": "01:00:00:00:00:01"}, 400),
        ({"colour": "red"}, 400),
        ({"cpu": "lots"}, 400),
        ({"boot": "ide:0:0"}, 400),
        ({"avoid:servers": RANDOM}, 404),
        ({"nic:0:model": "e1000", "nic:0:vlan": RANDOM}, 404),
        ({"nic:0:model": "e1000", "nic:0:dhcp": "192.0.2.7"}, 404),
        ({"vnc": "192.0.2.7"}, 404),
    ],
)
async def test_bad_configurations(alice, keys, status):
    body = {"name": "x", "cpu": "1000", "mem": "256", **keys}
    reply = await alice.call("/servers/create", body)
    assert reply.status == status, reply.text
    assert reply.text.count("\n") == 1
    assert (await alice.get("/servers/list")).text == ""


async def test_other_users_servers_and_drives(alice, bob):
    mine = (await new_server(alice, persistent="true"))["server"]
    theirs_drive = (await bob.create_drive("1M"))["drive"]
    for path in (
        f"/servers/{mine}/info",
        f"/servers/{mine}/set",
        f"/servers/{mine}/stop",
        f"/servers/{mine}/start",
        f"/servers/{mine}/shutdown",
        f"/servers/{mine}/reset",
        f"/servers/{mine}/destroy",
    ):
        theirs = await bob.call(path, {"name": "stolen"})
        missing = await bob.call(path.replace(mine, RANDOM), {"name": "stolen"})
        assert (theirs.status, theirs.error) == (404, "missing"), path
        assert theirs.text.replace(mine, RANDOM) == missing.text
    assert (await bob.get("/servers/list")).text == ""
    info = (await alice.get(f"/servers/{mine}/info", as_json=True)).json
    assert info["status"] == "active" and info["name"] == "web"

    reply = await alice.call("/servers/create", {"name": "x", "cpu": "1000", "mem": "256", "ide:0:0": theirs_drive})
    assert (reply.status, reply.error) == (404, "missing")
    reply = await alice.call(f"/servers/{mine}/set", {"avoid:drives": theirs_drive})
    assert reply.status in (404, 409)


async def test_readers_attach_read_only(alice, bob, client):
    shared = (await bob.create_drive("1M", readers=alice.user, **{"claim:type": "shared"}))["drive"]
    # QEMU cannot make an IDE disk read-only: refused, and nothing is left claimed or created.
    reply = await alice.call("/servers/create", {"name": "x", "cpu": "1000", "mem": "256", "ide:0:1": shared})
    assert (reply.status, reply.error) == (400, "usage")
    assert (await bob.get(f"/drives/{shared}/info", as_json=True)).json["claimed"] == []
    server = (await new_server(alice, {"block:1": shared}))["server"]
    host = client.app[SERVICES].servers.hypervisor
    record = await client.app[SERVICES].servers.get(alice.user, server)
    assert record.host in host.host_names
    info = (await bob.get(f"/drives/{shared}/info", as_json=True)).json
    assert info["claimed"] == [server]


async def test_exclusive_and_shared_claims(alice):
    exclusive = (await alice.create_drive("1M"))["drive"]
    shared = (await alice.create_drive("1M", **{"claim:type": "shared"}))["drive"]
    first = (await new_server(alice, {"ide:0:0": exclusive, "ide:0:1": shared}))["server"]
    reply = await alice.call("/servers/create", {"name": "b", "cpu": "1000", "mem": "256", "ide:0:0": exclusive})
    assert (reply.status, reply.error) == (409, "busy")
    second = (await new_server(alice, {"ide:0:0": shared}))["server"]
    claimed = (await alice.get(f"/drives/{shared}/info", as_json=True)).json["claimed"]
    assert sorted(claimed) == sorted([first, second])
    assert (await alice.get("/servers/list")).text.count("\n") == 2  # the refused one was not kept


async def test_a_drive_being_imaged_cannot_be_claimed(alice, client):
    from tests.api.test_imaging import Gate

    gate = Gate(client.app[SERVICES].drives.storage)
    source = (await alice.create_drive("1M"))["drive"]
    target = (await alice.create_drive("1M"))["drive"]
    assert (await alice.call(f"/drives/{target}/image/{source}")).status == 204
    await gate.started.wait()
    reply = await alice.call("/servers/create", {"name": "x", "cpu": "1000", "mem": "256", "ide:0:0": target})
    assert (reply.status, reply.error) == (409, "busy")
    gate.release.set()


async def test_pages_and_methods(alice):
    servers = [(await new_server(alice, start=False, name=f"s{i}"))["server"] for i in range(3)]
    assert (await alice.get("/servers/list?limit=2")).text.split()[::3] == servers[:2]
    assert (await alice.get(f"/servers/list?marker={servers[1]}")).text.split()[0] == servers[2]
    assert (await alice.get(f"/servers/list?marker={RANDOM}")).status == 400
    for path in (
        "/servers/create",
        "/servers/create/stopped",
        f"/servers/{servers[0]}/start",
        f"/servers/{servers[0]}/destroy",
    ):
        assert (await alice.get(path)).status == 405
    assert (await alice.get("/servers/list")).text.count("\n") == 3


async def test_guest_stopping_by_itself_is_noticed(alice, client):
    hypervisor = client.app[SERVICES].servers.hypervisor
    kept = (await new_server(alice, persistent="true"))["server"]
    gone = (await new_server(alice))["server"]
    record = await client.app[SERVICES].servers.get(alice.user, kept)
    for server in (kept, gone):  # power off behind the API's back, as a guest's own halt would
        await hypervisor.stop(record.host, server)

    async def noticed():
        kept_info = (await alice.get(f"/servers/{kept}/info", as_json=True)).json
        return kept_info["status"] == "stopped" and (await alice.get(f"/servers/{gone}/info")).status == 404

    await until(noticed)


async def test_start_up_reconciles_with_libvirt(config, serve, tmp_path):
    first = await serve(make_app(config))
    user, secret = await first.app[SERVICES].users.create()
    api = Api(first, user, secret)
    kept = (await new_server(api, persistent="true"))["server"]
    await first.close()  # guests keep running while the API is down; test:/// hosts do not, like a host reboot
    api = Api(await serve(make_app(config)), user, secret)
    info = (await api.get(f"/servers/{kept}/info", as_json=True)).json
    assert info["status"] == "stopped"


async def test_placement_across_hosts(tmp_path, serve):
    hosts = tuple(
        HostConfig(f"h{i}", f"test://{libvirt_test_host(tmp_path / f'h{i}.xml', memory_mb=1024)}") for i in range(3)
    )
    config = Config(data_dir=tmp_path / "var", hosts=hosts, default_cipher="none")
    client = await serve(make_app(config))
    services = client.app[SERVICES]
    user, secret = await services.users.create()
    api = Api(client, user, secret)

    async def host_of(server):
        return (await services.servers.get(user, server)).host

    first = (await new_server(api, mem="600"))["server"]
    second = (await new_server(api, {"avoid:servers": first}, mem="600"))["server"]
    assert await host_of(second) != await host_of(first)
    third = (await new_server(api, {"avoid:servers": f"{first} {second}"}, mem="600"))["server"]
    assert len({await host_of(s) for s in (first, second, third)}) == 3
    reply = await api.call("/servers/create", {"name": "big", "cpu": "1000", "mem": "600"})
    assert (reply.status, reply.error) == (507, "full")
    reply = await api.call("/servers/create", {"name": "huge", "cpu": "1000", "mem": "4096"})
    assert (reply.status, reply.error) == (507, "full")

    drive = (await api.create_drive("1M", **{"claim:type": "shared"}))["drive"]
    small = (await new_server(api, {"ide:0:0": drive}, mem="64"))["server"]
    other = (await new_server(api, {"avoid:drives": drive}, mem="64"))["server"]
    assert await host_of(other) != await host_of(small)
