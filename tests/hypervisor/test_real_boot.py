"""Real guests on the real libvirtd: a hand-made boot sector boots, resets, powers off and stops."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from elastic_api.config import HostConfig
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.model.device import Device
from elastic_api.api.elastichosts.codec.server import parse_config
from tests.support import GUEST_DEADLINE
from tests.hypervisor.bootsector_image import BOOT_MARKER, POWER_MARKER, write_boot_image
from tests.hypervisor.conftest import INSTALLATION, EventLog, wait_for

pytestmark = [pytest.mark.libvirt, pytest.mark.slow, pytest.mark.timeout(4 * GUEST_DEADLINE)]

# Firmware plus the boot sector take well under a second on TCG and a few seconds under nested
# KVM; a busy CI machine gets generous room before a test calls it a failure.
BOOT_TIMEOUT = GUEST_DEADLINE
HOST = "local"
HOST_CORE_MHZ = 2000


@pytest.fixture
async def hypervisor(system_libvirt: str, events: EventLog) -> AsyncIterator[LibvirtHypervisor]:
    hypervisor = LibvirtHypervisor(
        [HostConfig(HOST, system_libvirt)], installation=INSTALLATION, host_core_mhz=HOST_CORE_MHZ
    )
    hypervisor.on_event(events)
    await hypervisor.open()
    try:
        yield hypervisor
    finally:
        await hypervisor.close()


@pytest.fixture
def servers(system_libvirt: str) -> Iterator[list[str]]:
    """Server UUIDs a test starts; whatever still runs at the end is powered off."""
    started: list[str] = []
    yield started
    conn = libvirt.open(system_libvirt)
    try:
        for server in started:
            try:
                conn.lookupByUUIDString(server).destroy()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


@pytest.fixture
async def isolated_network(hypervisor: LibvirtHypervisor, system_libvirt: str) -> AsyncIterator[str]:
    """A libvirt network made for one test: a bridge with no forwarding, no host address, no DHCP."""
    name = f"elastic-t-{uuid.uuid4().hex[:8]}"
    await hypervisor.ensure_network(HOST, name)
    conn = libvirt.open(system_libvirt)
    try:
        network = conn.networkLookupByName(name)
        xml = network.XMLDesc(0)
        assert "<forward" not in xml and "<ip" not in xml and "<dns" not in xml
        yield name
        network.destroy()
    finally:
        conn.close()


def markers(log: Path, marker: bytes) -> int:
    return log.read_bytes().count(marker) if log.exists() else 0


def guest_spec(
    server: str,
    image: Path,
    fmt: str,
    device: str,
    log: Path,
    domain_type: str,
    networks: dict[int, str] | None = None,
    **props: str,
) -> DomainSpec:
    drive = str(uuid.uuid4())
    config = parse_config(
        {"name": f"boot test {device}", "cpu": str(HOST_CORE_MHZ), "smp": "1", "mem": "32", device: drive, **props},
        server,
    )
    return DomainSpec(
        server,
        config,
        {config.drives[0].device: DiskSpec(str(image), fmt)},
        serial_log=str(log),
        domain_type=domain_type,
        host_core_mhz=HOST_CORE_MHZ,
        networks=networks or {},
        installation=INSTALLATION,
    )


async def power_button_until_off(hypervisor: LibvirtHypervisor, events: EventLog, server: str) -> None:
    """Press the power button until the guest is off: a press before the guest has armed its
    ACPI power-button event (just after it boots) is lost, as on real hardware."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while "stopped" not in events.of(server)[-1:]:
        assert time.monotonic() < deadline, "the guest never powered off"
        await hypervisor.shutdown(HOST, server)
        for _ in range(250):  # up to 5 s for the guest to act on this press
            if "stopped" in events.of(server)[-1:]:
                break
            await asyncio.sleep(0.02)


async def test_a_guest_boots_resets_powers_off_and_stops(
    hypervisor: LibvirtHypervisor,
    events: EventLog,
    servers: list[str],
    isolated_network: str,
    tmp_path: Path,
    system_libvirt: str,
) -> None:
    server = str(uuid.uuid4())
    servers.append(server)
    image = write_boot_image(tmp_path / "boot.raw")
    log = tmp_path / f"{server}.log"
    domain_type = await hypervisor.domain_type(HOST)
    spec = guest_spec(
        server,
        image,
        "raw",
        "ide:0:0",
        log,
        domain_type,
        networks={0: isolated_network},
        **{"nic:0:model": "virtio", "vnc": "auto", "vnc:password": "s3cret"},
    )

    await hypervisor.start(HOST, domain_xml(spec))
    await wait_for(lambda: markers(log, BOOT_MARKER) == 1, BOOT_TIMEOUT, "the guest's boot marker")
    await wait_for(lambda: events.of(server) == ["started"], what="the started event")
    # Other servers (other test runs) may share this libvirtd: look only at ours.
    assert (await hypervisor.running()).get(server) == HOST

    stats = await hypervisor.stats(HOST, server)
    drive = stats.drives[Device("ide", 0, 0)]
    assert drive.read_bytes >= 512 and drive.read_requests >= 1  # the BIOS read the sector
    assert drive.write_bytes == 0
    assert (stats.sockets, stats.cores) == (1, 1)
    assert stats.vnc_port is not None and stats.vnc_port >= 5900
    assert all(isinstance(n, int) for n in (stats.rx_bytes, stats.tx_bytes, stats.rx_packets, stats.tx_packets))

    conn = libvirt.open(system_libvirt)
    try:
        dom = conn.lookupByUUIDString(server)
        assert dom.schedulerParameters()["vcpu_quota"] == 100_000
        await hypervisor.set_cpu_live(HOST, server, HOST_CORE_MHZ // 4)
        assert dom.schedulerParameters()["vcpu_quota"] == 25_000
        await hypervisor.set_vnc_password_live(HOST, server, "n3w")
        secure = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        assert "passwd='n3w'" in secure and f"<source network='{isolated_network}'" in secure
    finally:
        conn.close()
    await hypervisor.set_cpu_live(HOST, server, HOST_CORE_MHZ)

    await hypervisor.reset(HOST, server)
    await wait_for(lambda: markers(log, BOOT_MARKER) == 2, BOOT_TIMEOUT, "the boot marker after reset")
    assert events.of(server) == ["started"]  # a reset stays within the run

    await power_button_until_off(hypervisor, events, server)
    assert markers(log, POWER_MARKER) >= 1
    assert events.of(server) == ["started", "stopped"]
    assert server not in await hypervisor.running()

    # A new run of the same server, ended by a power cut.
    await hypervisor.start(HOST, domain_xml(spec))
    await wait_for(lambda: markers(log, BOOT_MARKER) == 3, BOOT_TIMEOUT, "the boot marker of the second run")
    await hypervisor.stop(HOST, server)
    await wait_for(
        lambda: events.of(server) == ["started", "stopped", "started", "stopped"], what="the events of the second run"
    )
    assert server not in await hypervisor.running()
    await hypervisor.stop(HOST, server)  # already off: nothing to do


@pytest.mark.parametrize("device, fmt", [("scsi:0:0", "raw"), ("block:0", "qcow2"), ("ide:0:1", "qcow2")])
async def test_guests_boot_from_every_bus_and_format(
    hypervisor: LibvirtHypervisor,
    events: EventLog,
    servers: list[str],
    tmp_path: Path,
    device: str,
    fmt: str,
) -> None:
    server = str(uuid.uuid4())
    servers.append(server)
    image = write_boot_image(tmp_path / "boot.raw")
    if fmt == "qcow2":
        converted = tmp_path / "boot.qcow2"
        subprocess.run(
            ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image), str(converted)],
            check=True,
            capture_output=True,
        )
        image = converted
    log = tmp_path / f"{server}.log"
    spec = guest_spec(server, image, fmt, device, log, await hypervisor.domain_type(HOST))

    await hypervisor.start(HOST, domain_xml(spec))
    await wait_for(lambda: markers(log, BOOT_MARKER) == 1, BOOT_TIMEOUT, f"the boot marker from {device}")
    await hypervisor.stop(HOST, server)
    await wait_for(lambda: events.of(server) == ["started", "stopped"], what="the run's events")


async def test_a_failed_start_says_why_without_internals(
    hypervisor: LibvirtHypervisor,
    servers: list[str],
    tmp_path: Path,
) -> None:
    server = str(uuid.uuid4())
    servers.append(server)
    spec = guest_spec(
        server, tmp_path / "missing.raw", "raw", "ide:0:0", tmp_path / "log", await hypervisor.domain_type(HOST)
    )
    from elastic_api.errors import FailedError

    with pytest.raises(FailedError) as caught:
        await hypervisor.start(HOST, domain_xml(spec))
    message = caught.value.message
    assert message.startswith(f"could not start server {server} on host {HOST}: ")
    assert str(tmp_path) not in message and "libvirt" not in message.lower() and "qemu" not in message.lower()
    assert server not in await hypervisor.running()
