"""A running domain's counters read from libvirt, as typed DomainStats."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt

from elastic_api.hypervisor.base import DomainStats, DriveStats
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
        drives[device] = DriveStats(read_bytes=read_bytes, read_requests=read_requests,
                                    write_bytes=write_bytes, write_requests=write_requests)
    vcpus = int(dom.info()[3])
    topology = root.find("cpu/topology")
    sockets, cores = vcpus, 1
    if topology is not None:
        sockets = int(topology.get("sockets", vcpus))
        cores = int(topology.get("cores", 1))
    graphics = root.find("devices/graphics[@type='vnc']")
    port = int(graphics.get("port", "-1")) if graphics is not None else -1
    return DomainStats(rx_bytes=rx_bytes, tx_bytes=tx_bytes, rx_packets=rx_packets, tx_packets=tx_packets,
                       drives=drives, sockets=sockets, cores=cores, vnc_port=port if port > 0 else None)
