"""A running server's counters in ElasticHosts words: `rx`, `tx`, `rx:packets`, `tx:packets`,
per drive `DEVICE:read:bytes`, `:read:requests`, `:write:bytes`, `:write:requests`, then
`smp:sockets`, `smp:cores` and, when it has a VNC display, `vnc:port`."""

from __future__ import annotations

from elastic_api.hypervisor.base import DomainStats
from elastic_api.api.elastichosts.codec.device import device_name
from elastic_api.api.elastichosts.properties import Info


# A drive's place as ElasticHosts names it (codec/device.py, shared with the servers' keys).
device_key = device_name


def stats_info(stats: DomainStats) -> Info:
    """The counters as info keys, in the order ElasticHosts lists them (drives in the guest's)."""
    info: Info = {
        "rx": stats.rx_bytes,
        "tx": stats.tx_bytes,
        "rx:packets": stats.rx_packets,
        "tx:packets": stats.tx_packets,
    }
    for device, drive in stats.drives.items():
        key = device_key(device)
        info[f"{key}:read:bytes"] = drive.read_bytes
        info[f"{key}:read:requests"] = drive.read_requests
        info[f"{key}:write:bytes"] = drive.write_bytes
        info[f"{key}:write:requests"] = drive.write_requests
    info["smp:sockets"], info["smp:cores"] = stats.sockets, stats.cores
    if stats.vnc_port is not None:
        info["vnc:port"] = stats.vnc_port
    return info
