"""Reading a domain's counters as DomainStats: libvirt's target dev names back to Devices."""

from __future__ import annotations

import pytest

from elastic_api.hypervisor.base import DomainStats, DriveStats
from elastic_api.hypervisor.domain import target_dev
from elastic_api.hypervisor.libvirt.stats import read_stats, target_device
from elastic_api.model.device import Device


@pytest.mark.parametrize(
    ("dev", "device"),
    [
        ("hda", Device("ide", 0, 0)),
        ("hdb", Device("ide", 0, 1)),
        ("hdc", Device("ide", 1, 0)),
        ("hdd", Device("ide", 1, 1)),
        ("sda", Device("scsi", 0, 0)),
        ("sdh", Device("scsi", 0, 7)),
        ("vda", Device("virtio", 0, 0)),
        ("vdc", Device("virtio", 0, 2)),
        ("vdh", Device("virtio", 0, 7)),
    ],
)
def test_target_device(dev: str, device: Device) -> None:
    assert target_device(dev) == device


@pytest.mark.parametrize(
    "dev",
    [
        "",
        "h",
        "hd",
        "hde",
        "hdz",
        "sdi",
        "sdz",
        "vdi",
        "vdz",
        "xvda",
        "hda1",
        "sdaa",
        "HDA",
        "hdA",
        "nvme0n1",
        "fda",
        "ubda",
        "vd0",
        "hd-",
    ],
)
def test_target_device_refuses_what_is_no_position_of_ours(dev: str) -> None:
    assert target_device(dev) is None


@pytest.mark.parametrize(
    "wire", ["ide:0:0", "ide:0:1", "ide:1:0", "ide:1:1", "scsi:0:0", "scsi:0:7", "block:0", "block:7"]
)
def test_target_device_inverts_the_domain_xml_names(wire: str) -> None:
    """Every drive position the domain XML writes reads back to the same place."""
    bus, *numbers = wire.split(":")
    expected = (
        Device.of_index("virtio", int(numbers[0]))
        if bus == "block"
        else Device("ide" if bus == "ide" else "scsi", int(numbers[0]), int(numbers[1]))
    )
    assert target_device(target_dev(expected)) == expected


class FakeDomain:
    """The four libvirt calls read_stats makes, answering fixed counters."""

    def __init__(self, xml: str, vcpus: int = 2) -> None:
        self.xml, self.vcpus = xml, vcpus

    def XMLDesc(self, _flags: int) -> str:  # noqa: N802 (libvirt's name)
        return self.xml

    def interfaceStats(self, dev: str) -> tuple[int, ...]:  # noqa: N802
        n = int(dev[-1])
        return (1000 * n, 10 * n, 0, 0, 2000 * n, 20 * n, 0, 0)

    def blockStats(self, dev: str) -> tuple[int, ...]:  # noqa: N802
        n = ord(dev[-1]) - ord("a") + 1
        return (n, 512 * n, 2 * n, 1024 * n, -1)

    def info(self) -> list[int]:
        return [1, 1024, 1024, self.vcpus, 0]


DOMAIN = """<domain type='qemu'><devices>
  <disk type='file' device='disk'><target dev='vdb' bus='virtio'/></disk>
  <disk type='file' device='disk'><target dev='hda' bus='ide'/></disk>
  <disk type='file' device='cdrom'><target dev='hde' bus='ide'/></disk>
  <disk type='file' device='disk'><target dev='sdc' bus='scsi'/></disk>
  <interface type='network'><target dev='vnet1'/></interface>
  <interface type='network'><target dev='vnet2'/></interface>
  <graphics type='vnc' port='5901'/>
</devices>%s</domain>"""


def test_read_stats() -> None:
    stats = read_stats(FakeDomain(DOMAIN % "<cpu><topology sockets='1' cores='2' threads='1'/></cpu>"))
    assert stats == DomainStats(
        rx_bytes=3000,
        tx_bytes=6000,
        rx_packets=30,
        tx_packets=60,
        drives={
            Device("virtio", 0, 1): DriveStats(read_bytes=1024, read_requests=2, write_bytes=2048, write_requests=4),
            Device("ide", 0, 0): DriveStats(read_bytes=512, read_requests=1, write_bytes=1024, write_requests=2),
            Device("scsi", 0, 2): DriveStats(read_bytes=1536, read_requests=3, write_bytes=3072, write_requests=6),
        },
        sockets=1,
        cores=2,
        vnc_port=5901,
    )
    # In the domain's order, the unknown target (hde) left out.
    assert list(stats.drives) == [Device("virtio", 0, 1), Device("ide", 0, 0), Device("scsi", 0, 2)]


def test_read_stats_without_topology_nics_or_a_vnc_port() -> None:
    xml = "<domain><devices><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>"
    stats = read_stats(FakeDomain(xml, vcpus=3))
    assert stats == DomainStats(
        rx_bytes=0, tx_bytes=0, rx_packets=0, tx_packets=0, drives={}, sockets=3, cores=1, vnc_port=None
    )
    assert read_stats(FakeDomain("<domain/>", vcpus=1)).vnc_port is None


def test_sample_of_a_bulk_stats_record() -> None:
    """A record as getAllDomainStats returns it (cpu, vcpu, interface and block groups): drives at
    our Devices are kept (a cdrom without media counts nothing), NICs summed."""
    from elastic_api.hypervisor.base import DomainSample, DriveBytes
    from elastic_api.hypervisor.libvirt.stats import sample_of

    record = {
        "cpu.time": 12_345_678_901,
        "cpu.user": 1,
        "cpu.system": 2,
        "vcpu.current": 2,
        "vcpu.maximum": 2,
        "vcpu.0.state": 1,
        "vcpu.0.time": 5,
        "net.count": 2,
        "net.0.name": "vnet0",
        "net.0.rx.bytes": 1000,
        "net.0.tx.bytes": 10,
        "net.0.rx.pkts": 3,
        "net.1.name": "vnet1",
        "net.1.rx.bytes": 24,
        "net.1.tx.bytes": 2,
        "block.count": 4,
        "block.0.name": "hda",
        "block.0.path": "/pool/a",
        "block.0.rd.bytes": 4096,
        "block.0.wr.bytes": 512,
        "block.0.rd.reqs": 8,
        "block.1.name": "hdc",  # a cdrom with no media: no counters at all
        "block.2.name": "vdb",
        "block.2.rd.bytes": 1,
        "block.2.wr.bytes": 2,
        "block.3.name": "xvda",
        "block.3.rd.bytes": 99,
        "block.3.wr.bytes": 99,  # no position of ours
    }
    assert sample_of("s1", 17.5, record) == DomainSample(
        server="s1",
        at=17.5,
        cpu_ns=12_345_678_901,
        vcpus=2,
        drives={
            Device("ide", 0, 0): DriveBytes(4096, 512),
            Device("ide", 1, 0): DriveBytes(0, 0),
            Device.of_index("virtio", 1): DriveBytes(1, 2),
        },
        rx_bytes=1024,
        tx_bytes=12,
    )
    assert sample_of("s2", 1.0, {}) == DomainSample("s2", 1.0, 0, 0, {}, 0, 0)
