"""A running domain's counters read from libvirt, as typed DomainStats, and the bulk statistics
of many domains as DomainSamples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import libvirt

from elastic_api.hypervisor.base import DomainSample, DomainStats, DriveBytes, DriveStats
from elastic_api.model.device import SHAPE, Bus, Device

# libvirt's target dev prefix of each bus (domain.target_dev writes them; see the domain XML).
_BUS_OF_PREFIX: dict[str, Bus] = {"hd": "ide", "sd": "scsi", "vd": "virtio"}


def target_device(dev: str) -> Device | None:
    """The Device of a drive at libvirt target dev `dev` (hda → IDE 0:0, hdd → IDE 1:1, sdc → SCSI
    0:2, vdb → virtio 1), the inverse of the names the domain XML gives; None for a name that is
    no position of ours (hde, sdi, vdz, xvda, hda1), which the stats then leave out."""
    bus = _BUS_OF_PREFIX.get(dev[:2])
    if bus is None or len(dev) != 3 or not "a" <= dev[2] <= "z":
        return None
    index = ord(dev[2]) - ord("a")
    controllers, units = SHAPE[bus]
    if index >= controllers * units:
        return None
    return Device.of_index(bus, index)


def read_stats(dom: libvirt.virDomain) -> DomainStats:
    """The counters of a running domain (blocking libvirt calls: run in a worker thread). Drives
    at targets that are no Device of ours are left out."""
    root = ET.fromstring(dom.XMLDesc(0))
    rx_bytes = tx_bytes = rx_packets = tx_packets = 0
    for target in root.iterfind("devices/interface/target"):
        rx_b, rx_p, _, _, tx_b, tx_p, _, _ = dom.interfaceStats(target.get("dev", ""))
        rx_bytes += rx_b
        tx_bytes += tx_b
        rx_packets += rx_p
        tx_packets += tx_p
    drives: dict[Device, DriveStats] = {}
    for target in root.iterfind("devices/disk/target"):
        dev = target.get("dev", "")
        device = target_device(dev)
        if device is None:
            continue
        read_requests, read_bytes, write_requests, write_bytes, _ = dom.blockStats(dev)
        drives[device] = DriveStats(
            read_bytes=read_bytes, read_requests=read_requests, write_bytes=write_bytes, write_requests=write_requests
        )
    vcpus = int(dom.info()[3])
    topology = root.find("cpu/topology")
    sockets, cores = vcpus, 1
    if topology is not None:
        sockets = int(topology.get("sockets", vcpus))
        cores = int(topology.get("cores", 1))
    graphics = root.find("devices/graphics[@type='vnc']")
    port = int(graphics.get("port", "-1")) if graphics is not None else -1
    return DomainStats(
        rx_bytes=rx_bytes,
        tx_bytes=tx_bytes,
        rx_packets=rx_packets,
        tx_packets=tx_packets,
        drives=drives,
        sockets=sockets,
        cores=cores,
        vnc_port=port if port > 0 else None,
    )


# The groups of libvirt's bulk statistics a sample needs: cpu.time, vcpu.current, net.N.* and
# block.N.* (vcpu also reads each vCPU's time: cheap, and the only group holding vcpu.current).
SAMPLE_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)


def _counter(record: Mapping[str, object], key: str) -> int:
    # A counter the record lacks (a cdrom without media has no rd.bytes, a NIC of some types no
    # tx.bytes) counts nothing: it adds 0 at every sample, so no rate is changed by it.
    value = record.get(key, 0)
    return int(value) if isinstance(value, int) else 0


def sample_of(server: str, at: float, record: Mapping[str, object]) -> DomainSample:
    """A DomainSample from one domain's record of libvirt's bulk statistics (getAllDomainStats
    with SAMPLE_GROUPS). Drives at targets that are no Device of ours are left out."""
    drives: dict[Device, DriveBytes] = {}
    for index in range(_counter(record, "block.count")):
        device = target_device(str(record.get(f"block.{index}.name", "")))
        if device is not None:
            drives[device] = DriveBytes(
                read_bytes=_counter(record, f"block.{index}.rd.bytes"),
                write_bytes=_counter(record, f"block.{index}.wr.bytes"),
            )
    nics = range(_counter(record, "net.count"))
    return DomainSample(
        server=server,
        at=at,
        cpu_ns=_counter(record, "cpu.time"),
        vcpus=_counter(record, "vcpu.current"),
        drives=drives,
        rx_bytes=sum(_counter(record, f"net.{i}.rx.bytes") for i in nics),
        tx_bytes=sum(_counter(record, f"net.{i}.tx.bytes") for i in nics),
    )
