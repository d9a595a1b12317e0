"""The libvirt driver's whole lifecycle against libvirt's in-process test driver (test:///)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import libvirt
import pytest

from elastic_api.config import Config, HostConfig
from elastic_api.errors import FailedError, FullError, InternalError, UnreachableError
from elastic_api.api.elastichosts.errors import answer_of
from elastic_api.hypervisor import Hypervisor
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.model.device import Device
from tests.hypervisor.conftest import INSTALLATION, EventLog, host_xml_file, server_xml, wait_for


def new_server() -> str:
    return str(uuid.uuid4())


def assert_clean(error: FailedError) -> None:
    """Failure messages are for clients: our words, never libvirt's names or internals."""
    assert "VIR_" not in error.message and "libvirt" not in error.message.lower()
    assert "virDomain" not in error.message and "/" not in error.message.replace("N/A", "")


async def test_start_stats_reset_stop(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    server = new_server()
    assert await test_hypervisor.running() == {}  # test:///default's own domain "test" is not ours
    await test_hypervisor.start("test", server_xml(server))
    assert await test_hypervisor.running() == {server: "test"}
    await wait_for(lambda: events.of(server) == ["started"], what="the started event")

    stats = await test_hypervisor.stats("test", server)
    drive = stats.drives[Device("ide", 0, 0)]
    for name, value in [
        ("rx_bytes", stats.rx_bytes),
        ("tx_bytes", stats.tx_bytes),
        ("rx_packets", stats.rx_packets),
        ("tx_packets", stats.tx_packets),
        ("read_bytes", drive.read_bytes),
        ("read_requests", drive.read_requests),
        ("write_bytes", drive.write_bytes),
        ("write_requests", drive.write_requests),
    ]:
        assert isinstance(value, int) and value >= 0, name
    assert (stats.sockets, stats.cores) == (1, 1)

    await test_hypervisor.reset("test", server)
    assert await test_hypervisor.running() == {server: "test"}
    await test_hypervisor.stop("test", server)
    assert await test_hypervisor.running() == {}
    await wait_for(lambda: events.of(server) == ["started", "stopped"], what="the stopped event")


async def test_shutdown_ends_the_run(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    await test_hypervisor.shutdown("test", server)
    await wait_for(lambda: "stopped" in events.of(server), what="the stopped event")
    assert await test_hypervisor.running() == {}


async def test_stop_and_shutdown_of_a_stopped_server_are_no_ops(test_hypervisor: LibvirtHypervisor) -> None:
    server = new_server()
    await test_hypervisor.stop("test", server)
    await test_hypervisor.shutdown("test", server)


@pytest.mark.parametrize("call", ["reset", "stats", "set_cpu_live", "set_vnc_password_live"])
async def test_calls_on_a_stopped_server_fail_cleanly(test_hypervisor: LibvirtHypervisor, call: str) -> None:
    server = new_server()
    args: tuple[object, ...] = {"set_cpu_live": (1000,), "set_vnc_password_live": ("pw",)}.get(call, ())
    with pytest.raises(FailedError) as caught:
        await getattr(test_hypervisor, call)("test", server, *args)
    assert server in caught.value.message and "not running" in caught.value.message
    assert_clean(caught.value)


async def test_start_twice_fails(test_hypervisor: LibvirtHypervisor) -> None:
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    with pytest.raises(FailedError, match="already running"):
        await test_hypervisor.start("test", server_xml(server))
    await test_hypervisor.stop("test", server)


async def test_live_changes_the_test_driver_lacks_fail_cleanly(test_hypervisor: LibvirtHypervisor) -> None:
    # The test driver has no CFS quotas and no device updates; the real ones are in test_real_boot.
    server = new_server()
    await test_hypervisor.start("test", server_xml(server, props={"vnc": "auto", "vnc:password": "a"}))
    for call in (
        test_hypervisor.set_cpu_live("test", server, 500),
        test_hypervisor.set_vnc_password_live("test", server, "b"),
    ):
        with pytest.raises(FailedError) as caught:
            await call
        assert_clean(caught.value)
    await test_hypervisor.stop("test", server)


async def test_vnc_password_needs_a_vnc_display(test_hypervisor: LibvirtHypervisor) -> None:
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    with pytest.raises(FailedError, match="no VNC display"):
        await test_hypervisor.set_vnc_password_live("test", server, "b")
    await test_hypervisor.stop("test", server)


async def test_memory_room_and_full(test_hypervisor: LibvirtHypervisor) -> None:
    assert await test_hypervisor.room_mb("test") == 1000
    first, second = new_server(), new_server()
    await test_hypervisor.start("test", server_xml(first, mem=600))
    assert await test_hypervisor.room_mb("test") == 400
    with pytest.raises(FullError):
        await test_hypervisor.start("test", server_xml(second, mem=600))
    with pytest.raises(FullError):
        await test_hypervisor.place(600)
    await test_hypervisor.stop("test", first)
    assert await test_hypervisor.room_mb("test") == 1000
    await test_hypervisor.start("test", server_xml(second, mem=600))
    await test_hypervisor.stop("test", second)


async def test_concurrent_starts_cannot_overfill_a_host(test_hypervisor: LibvirtHypervisor) -> None:
    servers = [new_server() for _ in range(4)]
    results = await asyncio.gather(
        *(test_hypervisor.start("test", server_xml(s, mem=300)) for s in servers), return_exceptions=True
    )
    assert sum(r is None for r in results) == 3  # 3 × 300 MB fit in 1000 MB, a fourth does not
    assert sum(isinstance(r, FullError) for r in results) == 1
    assert len(await test_hypervisor.running()) == 3
    for server in servers:
        await test_hypervisor.stop("test", server)


async def test_events_only_for_our_domains(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    conn = libvirt.open("test:///default")  # the same in-process host the hypervisor talks to
    try:
        foreign = conn.lookupByName("test")
        foreign.suspend()
        foreign.resume()
        server = new_server()
        await test_hypervisor.start("test", server_xml(server))
        await wait_for(lambda: events.of(server) == ["started"], what="our started event")
        assert all(s == server for s, _ in events.events)
        await test_hypervisor.stop("test", server)
    finally:
        conn.close()


async def test_paused_and_resumed_events(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByUUIDString(server)
        dom.suspend()
        dom.resume()
    finally:
        conn.close()
    await test_hypervisor.stop("test", server)
    await wait_for(lambda: events.of(server) == ["started", "paused", "resumed", "stopped"], what="four events")


async def test_a_failing_handler_does_not_stop_delivery(test_hypervisor: LibvirtHypervisor) -> None:
    seen: list[str] = []

    async def handler(server: str, event: str) -> None:
        seen.append(event)
        raise RuntimeError("handler bug")

    test_hypervisor.on_event(handler)
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    await test_hypervisor.stop("test", server)
    await wait_for(lambda: seen == ["started", "stopped"], what="both events despite the failing handler")


async def test_a_stale_stopped_event_is_dropped(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    """A stop from an earlier run that arrives once the server runs again must not be delivered."""
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    await wait_for(lambda: events.of(server) == ["started"], what="started")
    # Replay the STOPPED event libvirt would have sent for a previous run, then a SUSPENDED one:
    # events are delivered in order, so once "paused" arrives the stale stop has been judged.
    test_hypervisor._events.on_lifecycle("test", f"elastic-{server}", server, libvirt.VIR_DOMAIN_EVENT_STOPPED, 0)
    test_hypervisor._events.on_lifecycle("test", f"elastic-{server}", server, libvirt.VIR_DOMAIN_EVENT_SUSPENDED, 0)
    await wait_for(lambda: events.of(server)[-1:] == ["paused"], what="the marker event")
    assert events.of(server) == ["started", "paused"]
    await test_hypervisor.stop("test", server)
    await wait_for(lambda: events.of(server) == ["started", "paused", "stopped"], what="the real stop")


async def test_resumed_only_after_paused(test_hypervisor: LibvirtHypervisor, events: EventLog) -> None:
    """QEMU guests start paused and are resumed before libvirt reports them started: that
    resume is not news. One after a pause is."""
    server = new_server()
    await test_hypervisor.start("test", server_xml(server))
    await wait_for(lambda: events.of(server) == ["started"], what="started")
    for event in (
        libvirt.VIR_DOMAIN_EVENT_RESUMED,
        libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
        libvirt.VIR_DOMAIN_EVENT_RESUMED,
        libvirt.VIR_DOMAIN_EVENT_RESUMED,
    ):
        test_hypervisor._events.on_lifecycle("test", f"elastic-{server}", server, event, 0)
    await test_hypervisor.stop("test", server)
    await wait_for(lambda: events.of(server)[-1:] == ["stopped"], what="the stop")
    assert events.of(server) == ["started", "paused", "resumed", "stopped"]


async def test_kvm_and_domain_type_on_a_test_host(test_hypervisor: LibvirtHypervisor) -> None:
    assert await test_hypervisor.kvm_available("test") is False
    assert await test_hypervisor.domain_type("test") == "qemu"


async def test_ensure_network_is_idempotent(test_hypervisor: LibvirtHypervisor) -> None:
    await test_hypervisor.ensure_network("test", "elastic-isolated")
    await test_hypervisor.ensure_network("test", "elastic-isolated")
    conn = libvirt.open("test:///default")
    try:
        network = conn.networkLookupByName("elastic-isolated")
        assert network.isActive()
        assert "<forward" not in network.XMLDesc(0) and "<ip" not in network.XMLDesc(0)
    finally:
        conn.close()


async def test_unknown_host(test_hypervisor: LibvirtHypervisor) -> None:
    with pytest.raises(FailedError, match="no host named 'elsewhere'"):
        await test_hypervisor.stop("elsewhere", new_server())


async def test_an_unreachable_host_does_not_block_the_others(tmp_path: Path) -> None:
    good = host_xml_file(tmp_path / "good.xml", memory_mb=2048)
    hypervisor = LibvirtHypervisor(
        [HostConfig("gone", f"test://{tmp_path}/missing.xml"), HostConfig("good", f"test://{good}")],
        installation=INSTALLATION,
    )
    await hypervisor.open()
    try:
        assert await hypervisor.place(512) == "good"
        # No reachable host has room, but the one out of reach might: unreachable, not full.
        with pytest.raises(UnreachableError, match="unreachable: gone") as unreachable:
            await hypervisor.place(4096)
        assert answer_of(unreachable.value) == (503, "failed")
        with pytest.raises(UnreachableError) as caught:
            await hypervisor.stats("gone", new_server())
        assert caught.value.message == "host gone is unreachable" and answer_of(caught.value) == (503, "failed")
        with pytest.raises(FailedError, match="unreachable"):
            await hypervisor.running()  # "not running" must never be a guess
        server = new_server()
        await hypervisor.start("good", server_xml(server))
        await hypervisor.stop("good", server)
    finally:
        await hypervisor.close()


async def test_full_when_every_host_answered(tmp_path: Path) -> None:
    good = host_xml_file(tmp_path / "good.xml", memory_mb=2048)
    hypervisor = LibvirtHypervisor([HostConfig("good", f"test://{good}")], installation=INSTALLATION)
    await hypervisor.open()
    try:
        with pytest.raises(FullError) as caught:
            await hypervisor.place(4096)
        assert not isinstance(caught.value, UnreachableError) and answer_of(caught.value) == (507, "full")
    finally:
        await hypervisor.close()


async def test_from_config() -> None:
    config = Config(hosts=(HostConfig("a", "test:///default"), HostConfig("b", "test:///default")))
    hypervisor: Hypervisor = LibvirtHypervisor.from_config(config, INSTALLATION)  # it is what the service expects
    assert hypervisor.host_names == ("a", "b")


async def test_no_hosts_is_an_error() -> None:
    with pytest.raises(FailedError):
        LibvirtHypervisor([], installation=INSTALLATION)
    with pytest.raises(InternalError):
        LibvirtHypervisor([HostConfig("test", "test:///default")], installation="not-a-uuid")


async def test_close_is_safe_twice_and_without_open() -> None:
    hypervisor = LibvirtHypervisor([HostConfig("test", "test:///default")], installation=INSTALLATION)
    await hypervisor.close()
    await hypervisor.open()
    await hypervisor.close()
    await hypervisor.close()
