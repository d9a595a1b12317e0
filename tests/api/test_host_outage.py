"""A host out of reach and back (issue 19 item 6), on the real libvirtd: the app reaches qemu:///system
through a relay of libvirtd's socket (tests/hypervisor/socket_proxy.py), and cutting the relay
is the host going away for the app alone, while libvirtd goes on serving every other test run on
the machine. While it is away a create or start says the host is unreachable (503 `failed`), not
that no host has room (507); guests that die meanwhile are put right, by their persistence, once
it is back, without the API restarting."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.conftest import Api, make_app
from tests.hypervisor.bootsector_image import BOOT_MARKER, boot_sector
from tests.hypervisor.socket_proxy import SocketRelay

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]
# Boots and the catch-up after the host returns (one reconnect interval, 5 s by default, then a
# reconcile) take seconds; a busy shared machine gets generous room.
TIMEOUT = 180.0


@pytest.fixture
def relay(system_libvirt: str, tmp_path: Path) -> Iterator[SocketRelay]:
    if system_libvirt != "qemu:///system":
        pytest.skip("the relay stands in front of the local libvirtd's socket")
    relay = SocketRelay(tmp_path / "libvirt.sock")
    relay.restore()
    yield relay
    relay.close()  # the app's connection goes with it; libvirtd itself was never touched


@pytest.fixture
def virsh(system_libvirt: str) -> Iterator[libvirt.virConnect]:
    """A connection of the test's own, straight to libvirtd: it never goes away."""
    conn = libvirt.open(system_libvirt)
    yield conn
    conn.close()


@pytest.fixture
async def api(relay: SocketRelay, serve: Any, tmp_path: Path, virsh: libvirt.virConnect) -> AsyncIterator[Api]:
    """The default config but for the host's URI (through the relay)."""
    config = Config(data_dir=tmp_path / "var", hosts=(HostConfig("local", relay.uri),))
    client = await serve(make_app(config))
    user, secret = await client.app[SERVICES].users.create()
    api = Api(client, user, secret)
    yield api
    # Straight to libvirtd (the app's connection may be away, the app itself restarted): every
    # guest whose files are this test's.
    for dom in virsh.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            if str(tmp_path) in dom.XMLDesc(0):
                dom.destroy()
        except libvirt.libvirtError:
            pass


async def until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def booted_server(api: Api, persistent: str) -> str:
    drive = (await api.create_drive("1M", name="boot"))["drive"]
    assert (
        await api.call(f"/drives/{drive}/write/0", gzip.compress(boot_sector()), headers={"Content-Encoding": "gzip"})
    ).status == 204
    reply = await api.call(
        "/servers/create",
        {
            "name": "guest",
            "cpu": "2000",
            "smp": "1",
            "mem": "64",
            "persistent": persistent,
            "ide:0:0": drive,
            "boot": "ide:0:0",
        },
        as_json=True,
    )
    assert reply.status == 200, reply.text
    server = reply.json["server"]
    log = api.client.app[SERVICES].servers.serial_log(server)

    async def booted() -> bool:
        return log.exists() and BOOT_MARKER in log.read_bytes()

    await until(booted, "the guest's boot marker")
    return str(server)


def qemu_pid(server: str) -> int:
    return int(Path(f"/run/libvirt/qemu/elastic-{server}.pid").read_text().strip())


async def gone_from_libvirt(virsh: libvirt.virConnect, server: str) -> bool:
    def look() -> bool:
        try:
            return not virsh.lookupByUUIDString(server).isActive()
        except libvirt.libvirtError:
            return True

    return await asyncio.to_thread(look)


async def test_guests_that_died_while_the_host_was_away_are_put_right_when_it_returns(
    api: Api,
    relay: SocketRelay,
    virsh: libvirt.virConnect,
) -> None:
    persistent, transient = await booted_server(api, "true"), await booted_server(api, "false")
    drive = (await api.get(f"/servers/{persistent}/info", as_json=True)).json["ide:0:0"]

    relay.cut()
    for server in (persistent, transient):  # the guests die (their QEMU is killed) while we cannot see
        os.kill(qemu_pid(server), signal.SIGKILL)
    for server in (persistent, transient):
        await until(lambda server=server: gone_from_libvirt(virsh, server), "libvirtd to see the guest gone")

    # While the host is away: nothing is known of the deaths, and a create says unreachable, not full.
    assert (await api.get(f"/servers/{persistent}/info", as_json=True)).json["status"] == "active"
    reply = await api.call("/servers/create", {"name": "new", "cpu": "1000", "mem": "32"})
    assert (reply.status, reply.error) == (503, "failed") and "unreachable" in reply.text, reply.text
    stopped = (
        await api.call("/servers/create/stopped", {"name": "later", "cpu": "1000", "mem": "32"}, as_json=True)
    ).json["server"]
    reply = await api.call(f"/servers/{stopped}/start")
    assert (reply.status, reply.error) == (503, "failed") and "unreachable" in reply.text, reply.text
    listed = (await api.get("/servers/list")).text.split()[::3]
    assert sorted(listed) == sorted([persistent, transient, stopped])  # the failed create left nothing behind

    relay.restore()

    async def put_right() -> bool:
        info = await api.get(f"/servers/{persistent}/info", as_json=True)
        gone = (await api.get(f"/servers/{transient}/info")).status == 404
        return info.json["status"] == "stopped" and gone

    await until(put_right, "the persistent server to stop and the transient one to go")
    assert (await api.get(f"/drives/{drive}/info", as_json=True)).json["claimed"] == []

    assert (await api.call(f"/servers/{stopped}/start")).status == 204  # the host is usable again
    assert (await api.call(f"/servers/{stopped}/stop")).status == 204


async def test_a_host_away_at_start_up_is_reconciled_when_it_returns(
    api: Api,
    relay: SocketRelay,
    virsh: libvirt.virConnect,
    serve: Any,
) -> None:
    server = await booted_server(api, "true")
    config = api.client.app[SERVICES].servers.config
    await api.client.close()  # the API goes down; its guest runs on
    relay.cut()
    os.kill(qemu_pid(server), signal.SIGKILL)
    await until(lambda: gone_from_libvirt(virsh, server), "libvirtd to see the guest gone")

    # The API starts while its only host is away: it serves, and takes nothing for stopped yet.
    client = await serve(make_app(config))
    api = Api(client, api.user, api.secret)
    assert (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "active"
    relay.restore()

    async def stopped() -> bool:
        return (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "stopped"

    await until(stopped, "the server to stop once its host is back")
