"""Placement: the pure choice, and the driver placing over several test:/// hosts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elastic_api.config import HostConfig
from elastic_api.errors import FullError
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.hypervisor.placement import HostRoom, choose_host
from tests.hypervisor.conftest import INSTALLATION, host_xml_file, server_xml


def rooms(**room_mb: int) -> list[HostRoom]:
    return [HostRoom(name, mb) for name, mb in room_mb.items()]


def test_most_room_wins() -> None:
    assert choose_host(rooms(a=1000, b=3000, c=2000), 512) == "b"


def test_ties_go_to_the_first_configured_host() -> None:
    assert choose_host(rooms(a=1000, b=1000), 512) == "a"


def test_only_hosts_with_room() -> None:
    assert choose_host(rooms(a=5000, b=300), 4096) == "a"
    assert choose_host(rooms(a=512), 512) == "a"  # exactly full still fits


def test_avoided_hosts_only_as_a_last_resort() -> None:
    assert choose_host(rooms(a=8000, b=1000), 512, avoid={"a"}) == "b"
    assert choose_host(rooms(a=8000, b=100), 512, avoid={"a"}) == "a"
    assert choose_host(rooms(a=8000, b=4000, c=2000), 512, avoid={"a", "b"}) == "c"


@pytest.mark.parametrize("room_mb", [{}, {"a": 511, "b": 0, "c": -100}])
def test_full(room_mb: dict[str, int]) -> None:
    with pytest.raises(FullError) as caught:
        choose_host(rooms(**room_mb), 512, avoid={"a"})
    assert "512 MB" in caught.value.message


@pytest.fixture
async def three_hosts(tmp_path: Path) -> AsyncIterator[LibvirtHypervisor]:
    """Hosts small (1 GB of host memory), big (4 GB) and capped (8 GB, but mem_mb 2048)."""
    hosts = [
        HostConfig("small", f"test://{host_xml_file(tmp_path / 'small.xml', 1024)}"),
        HostConfig("big", f"test://{host_xml_file(tmp_path / 'big.xml', 4096)}"),
        HostConfig("capped", f"test://{host_xml_file(tmp_path / 'capped.xml', 8192)}", mem_mb=2048),
    ]
    hypervisor = LibvirtHypervisor(hosts, installation=INSTALLATION)
    await hypervisor.open()
    try:
        yield hypervisor
    finally:
        await hypervisor.close()


async def test_room_comes_from_host_memory_or_mem_mb(three_hosts: LibvirtHypervisor) -> None:
    assert [await three_hosts.room_mb(h) for h in ("small", "big", "capped")] == [1024, 4096, 2048]


async def test_placing_fills_hosts_by_room(three_hosts: LibvirtHypervisor) -> None:
    placed = []
    for _ in range(4):
        host = await three_hosts.place(1000)
        await three_hosts.start(host, server_xml(str(uuid.uuid4()), mem=1000))
        placed.append(host)
    # Rooms before each: big 4096, capped 2048 → big; 3096 → big; 2096 → big; 1096 vs 2048 → capped.
    assert placed == ["big", "big", "big", "capped"]
    assert [await three_hosts.room_mb(h) for h in ("small", "big", "capped")] == [1024, 1096, 1048]
    assert await three_hosts.place(1024) == "big"
    assert await three_hosts.place(1024, avoid_hosts={"big"}) == "capped"
    assert await three_hosts.place(1024, avoid_hosts={"big", "capped"}) == "small"
    with pytest.raises(FullError):
        await three_hosts.place(1100)
    servers = await three_hosts.running()
    assert sorted(servers.values()) == ["big", "big", "big", "capped"]
    for server, host in servers.items():
        await three_hosts.stop(host, server)


async def test_avoid_hosts(three_hosts: LibvirtHypervisor) -> None:
    assert await three_hosts.place(512, avoid_hosts={"big"}) == "capped"
    assert await three_hosts.place(512, avoid_hosts={"big", "capped"}) == "small"
    # Only the avoided host has room: the server still starts, on it.
    assert await three_hosts.place(3000, avoid_hosts={"big"}) == "big"


async def test_all_full(three_hosts: LibvirtHypervisor) -> None:
    with pytest.raises(FullError):
        await three_hosts.place(4097)
