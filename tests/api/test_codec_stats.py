"""Golden tests: a server's typed counters in ElasticHosts info keys."""

from __future__ import annotations

import pytest

from elastic_api.api.elastichosts.codec.stats import device_key, stats_info
from elastic_api.hypervisor.base import DomainStats, DriveStats
from elastic_api.model.device import Device
from elastic_api.api.elastichosts.properties import render_properties


@pytest.mark.parametrize(
    ("device", "key"),
    [
        (Device("ide", 0, 0), "ide:0:0"),
        (Device("ide", 0, 1), "ide:0:1"),
        (Device("ide", 1, 0), "ide:1:0"),
        (Device("ide", 1, 1), "ide:1:1"),
        (Device("scsi", 0, 0), "scsi:0:0"),
        (Device("scsi", 0, 7), "scsi:0:7"),
        (Device("virtio", 0, 0), "block:0"),
        (Device("virtio", 0, 5), "block:5"),
        (Device("virtio", 0, 7), "block:7"),
    ],
)
def test_device_key(device: Device, key: str) -> None:
    assert device_key(device) == key


def test_stats_info_golden() -> None:
    stats = DomainStats(
        rx_bytes=3000,
        tx_bytes=6000,
        rx_packets=30,
        tx_packets=60,
        drives={
            Device("virtio", 0, 1): DriveStats(read_bytes=1024, read_requests=2, write_bytes=2048, write_requests=4),
            Device("ide", 1, 0): DriveStats(read_bytes=512, read_requests=1, write_bytes=0, write_requests=0),
        },
        sockets=1,
        cores=2,
        vnc_port=5901,
    )
    # The text the ElasticHosts API answers, key order included.
    assert render_properties(stats_info(stats)) == (
        "rx 3000\n"
        "tx 6000\n"
        "rx:packets 30\n"
        "tx:packets 60\n"
        "block:1:read:bytes 1024\n"
        "block:1:read:requests 2\n"
        "block:1:write:bytes 2048\n"
        "block:1:write:requests 4\n"
        "ide:1:0:read:bytes 512\n"
        "ide:1:0:read:requests 1\n"
        "ide:1:0:write:bytes 0\n"
        "ide:1:0:write:requests 0\n"
        "smp:sockets 1\n"
        "smp:cores 2\n"
        "vnc:port 5901\n"
    )


def test_stats_info_without_drives_or_vnc() -> None:
    stats = DomainStats(
        rx_bytes=0, tx_bytes=0, rx_packets=0, tx_packets=0, drives={}, sockets=4, cores=1, vnc_port=None
    )
    assert stats_info(stats) == {"rx": 0, "tx": 0, "rx:packets": 0, "tx:packets": 0, "smp:sockets": 4, "smp:cores": 1}
