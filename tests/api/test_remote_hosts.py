"""Hosts named by remote libvirt URIs (issue 16), reaching the machine's own libvirtd on loopback
instead of a second machine:
- `qemu+tcp://127.0.0.1:PORT/system` through a relay (tests/hypervisor/socket_proxy.py TcpRelay:
  libvirt's TCP transport on the client's side, libvirtd's own RPC on the other); cutting the
  relay is the remote host going away for the app under test alone;
- `qemu+ssh://root@127.0.0.1:PORT/system?keyfile=…` through an sshd of the test's own
  (tests/hypervisor/loopback_sshd.py: its keys, known_hosts and port), which runs
  virt-ssh-helper against libvirtd's socket; killing that sshd is the host going away.
The shared libvirtd is never reconfigured or restarted.

Where a test configures two hosts, the remote one and qemu:///system, both are the same libvirtd
underneath: each "host" sees every guest of the other. Placement is checked by which host each
server was started through (its record) and its room by the configured mem_mb; nothing here
makes one host reconnect while the other runs guests (a reconcile of one would take the other's
guests for strays: two host entries for one libvirtd is a misconfiguration outside tests)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.api.test_host_outage import booted_server, gone_from_libvirt, qemu_pid, until
from tests.conftest import Api, make_app
from tests.hypervisor.loopback_sshd import LoopbackSshd, available as sshd_available
from tests.hypervisor.socket_proxy import TcpRelay
from tests.support import Server, free_port, remove_guests_under, wait_until, write_config

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]
# Seconds between reconnection attempts in these tests: a host that returns is picked up within it.
RECONNECT = 1.0


@pytest.fixture
def relay(system_libvirt: str) -> Iterator[TcpRelay]:
    if system_libvirt != "qemu:///system":
        pytest.skip("the relay stands in front of the local libvirtd's socket")
    relay = TcpRelay()
    relay.restore()
    yield relay
    relay.close()  # the app's connection goes with it; libvirtd itself was never touched


@pytest.fixture
def sshd(system_libvirt: str, tmp_path: Path) -> Iterator[LoopbackSshd]:
    if system_libvirt != "qemu:///system" or not sshd_available():
        pytest.skip("needs root, sshd (scripts/setup.sh installs openssh-server) and the local libvirtd")
    sshd = LoopbackSshd(tmp_path / "sshd")
    sshd.start()
    yield sshd
    sshd.stop()


@pytest.fixture
def virsh(system_libvirt: str) -> Iterator[libvirt.virConnect]:
    """A connection of the test's own, straight to libvirtd: it never goes away."""
    conn = libvirt.open(system_libvirt)
    yield conn
    conn.close()


@pytest.fixture
def start_api(serve: Any, tmp_path: Path, system_libvirt: str) -> Iterator[Any]:
    """Starts the app on the default config but for the hosts (and reconnect interval) given; at
    the end every guest whose files are this test's is removed, straight through libvirtd."""

    async def start(*hosts: HostConfig) -> Api:
        config = Config(data_dir=tmp_path / "var", hosts=hosts, host_reconnect_interval=RECONNECT)
        client = await serve(make_app(config))
        user, secret = await client.app[SERVICES].users.create()
        return Api(client, user, secret)

    yield start
    remove_guests_under(system_libvirt, tmp_path)


async def host_of(api: Api, server: str) -> str | None:
    record = await api.client.app[SERVICES].servers.store.get_server(api.user, server)
    assert record is not None
    return record.host


async def test_a_real_guest_boots_and_stops_on_a_host_named_by_a_qemu_tcp_uri(
    start_api: Any,
    relay: TcpRelay,
    virsh: libvirt.virConnect,
) -> None:
    api: Api = await start_api(HostConfig("remote", relay.uri))
    # The default config: an encrypted boot drive, so its key went to libvirtd as a secret over TCP.
    server = await booted_server(api, "true")
    assert await host_of(api, server) == "remote"
    assert (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "active"
    assert virsh.lookupByUUIDString(server).isActive()
    assert (await api.call(f"/servers/{server}/stop")).status == 204
    assert (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "stopped"
    assert await gone_from_libvirt(virsh, server)


async def test_placement_across_the_remote_host_and_the_local_one(
    start_api: Any,
    relay: TcpRelay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Both see the same guests, so their rooms differ by their mem_mb alone: the remote one has
    # 100 MB more, and a server goes there unless it asks to avoid a server running there.
    api: Api = await start_api(
        HostConfig("local", "qemu:///system", mem_mb=100_000), HostConfig("remote", relay.uri, mem_mb=100_100)
    )
    # Start-up said that the two are one machine (what the test does on purpose).
    assert any("hosts local and remote are one machine" in r.getMessage() for r in caplog.records)
    first = await api.call("/servers/create", {"name": "a", "cpu": "1000", "mem": "32"}, as_json=True)
    assert first.status == 200, first.text
    a = first.json["server"]
    second = await api.call(
        "/servers/create", {"name": "b", "cpu": "1000", "mem": "32", "avoid:servers": a}, as_json=True
    )
    assert second.status == 200, second.text
    b = second.json["server"]
    assert (await host_of(api, a), await host_of(api, b)) == ("remote", "local")
    hypervisor = api.client.app[SERVICES].servers.hypervisor
    assert (await hypervisor.running(hosts=["remote"]))[a] == "remote"
    for server in (a, b):  # each stopped through the host it was started on
        assert (await api.call(f"/servers/{server}/stop")).status == 204
        assert (await api.get(f"/servers/{server}/info")).status == 404  # not persistent: gone


async def test_with_the_remote_host_away_a_server_is_placed_on_the_other(start_api: Any, relay: TcpRelay) -> None:
    api: Api = await start_api(
        HostConfig("local", "qemu:///system", mem_mb=100_000), HostConfig("remote", relay.uri, mem_mb=100_100)
    )
    hypervisor = api.client.app[SERVICES].servers.hypervisor
    relay.cut()

    async def lost() -> bool:
        return hypervisor.hosts_connected() == {"local": True, "remote": False}

    await until(lost, "the remote host to be known lost", timeout=60)
    # The remote host would have had more room, but cannot be asked: the server goes to the other.
    reply = await api.call("/servers/create", {"name": "a", "cpu": "1000", "mem": "32"}, as_json=True)
    assert reply.status == 200, reply.text
    server = reply.json["server"]
    assert await host_of(api, server) == "local"
    # Stopped before the remote host could come back: its reconcile would see this guest too
    # (one libvirtd underneath) and take it for a stray.
    assert (await api.call(f"/servers/{server}/stop")).status == 204


async def test_a_remote_host_that_goes_away_is_reported_and_picked_up_again(
    start_api: Any,
    relay: TcpRelay,
    virsh: libvirt.virConnect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api: Api = await start_api(HostConfig("remote", relay.uri))
    hypervisor = api.client.app[SERVICES].servers.hypervisor
    server = await booted_server(api, "true")
    stopped = (
        await api.call("/servers/create/stopped", {"name": "later", "cpu": "1000", "mem": "32"}, as_json=True)
    ).json["server"]
    assert hypervisor.hosts_connected() == {"remote": True}

    with caplog.at_level(logging.WARNING, logger="elastic_api.hypervisor.libvirt.hosts"):
        relay.cut()
        os.kill(qemu_pid(server), signal.SIGKILL)  # its guest dies while the host is out of reach
        await until(lambda: gone_from_libvirt(virsh, server), "libvirtd to see the guest gone")

        async def lost() -> bool:
            return hypervisor.hosts_connected() == {"remote": False}

        await until(lost, "the connection to be known lost", timeout=60)
        assert any("remote" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

        # Nothing can be known of the guest meanwhile: the server stays as it was last seen.
        assert (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "active"
        reply = await api.call(f"/servers/{stopped}/start")
        assert (reply.status, reply.error) == (503, "failed") and "unreachable" in reply.text, reply.text
        reply = await api.call("/servers/create", {"name": "new", "cpu": "1000", "mem": "32"})
        assert (reply.status, reply.error) == (503, "failed") and "unreachable" in reply.text, reply.text

    relay.restore()
    # Picked up again by the watcher alone (no request asks for the host), within a few intervals.
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def back() -> bool:
        return hypervisor.hosts_connected() == {"remote": True}

    await until(back, "the connection to reopen", timeout=30)
    assert loop.time() - began < 3 * RECONNECT + 5

    async def put_right() -> bool:
        return (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "stopped"

    await until(put_right, "the guest that died while away to show stopped")
    assert (await api.call(f"/servers/{stopped}/start")).status == 204
    assert await host_of(api, stopped) == "remote"
    assert (await api.call(f"/servers/{stopped}/stop")).status == 204


async def test_a_real_guest_on_a_host_named_by_a_qemu_ssh_uri_outlives_the_host_going_away(
    start_api: Any,
    sshd: LoopbackSshd,
    virsh: libvirt.virConnect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over SSH, with the default config (an encrypted drive: its secret defined through the
    tunnel): the guest boots; sshd dies (the host is out of reach, its guest runs on); a start
    that needs the host fails 503; sshd returns and the host is picked up again, guest and all."""
    api: Api = await start_api(HostConfig("ssh-host", sshd.uri))
    hypervisor = api.client.app[SERVICES].servers.hypervisor
    server = await booted_server(api, "true")
    assert await host_of(api, server) == "ssh-host"
    assert virsh.lookupByUUIDString(server).isActive()  # the same libvirtd, reached through ssh
    stopped = (
        await api.call("/servers/create/stopped", {"name": "later", "cpu": "1000", "mem": "32"}, as_json=True)
    ).json["server"]

    with caplog.at_level(logging.WARNING, logger="elastic_api.hypervisor.libvirt.hosts"):
        sshd.stop()

        async def lost() -> bool:
            return hypervisor.hosts_connected() == {"ssh-host": False}

        await until(lost, "the connection to be known lost", timeout=60)
        assert any("ssh-host" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        reply = await api.call(f"/servers/{stopped}/start")
        assert (reply.status, reply.error) == (503, "failed") and "unreachable" in reply.text, reply.text

    sshd.start()

    async def back() -> bool:
        return hypervisor.hosts_connected() == {"ssh-host": True}

    await until(back, "the connection to reopen", timeout=30)
    assert (await api.call(f"/servers/{stopped}/start")).status == 204  # usable again
    # The guest ran on while its host was away, and the reconcile after the return left it so.
    assert (await api.get(f"/servers/{server}/info", as_json=True)).json["status"] == "active"
    assert virsh.lookupByUUIDString(server).isActive()
    for running in (server, stopped):
        assert (await api.call(f"/servers/{running}/stop")).status == 204
        assert await gone_from_libvirt(virsh, running)


def host_up(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        s.labels["host"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "elastic_api_host_up"
    }


def test_the_real_program_reports_a_remote_host_down_and_up_in_its_metrics(tmp_path: Path, relay: TcpRelay) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path,
        hosts=[{"name": "remote", "uri": relay.uri}],
        metrics_listen=metrics,
        host_reconnect_interval=RECONNECT,
    )
    server = Server(config).start()
    url = f"http://{metrics}/metrics"
    try:
        assert host_up(url) == {"remote": 1}
        relay.cut()
        wait_until(lambda: host_up(url) == {"remote": 0}, "host_up to fall to 0", 60)
        relay.restore()
        wait_until(lambda: host_up(url) == {"remote": 1}, "host_up to come back to 1", 30)
    finally:
        assert server.stop() == 0
    log = server.log.read_text()
    assert "WARNING elastic_api.hypervisor.libvirt.hosts: host remote" in log, log[-2000:]
