"""Fixtures for the hypervisor tests: libvirt test hosts, a waiting helper, the real libvirtd."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from elastic_api.config import HostConfig
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.api.elastichosts.codec.server import parse_config
from elastic_api.model.device import Device

# The installation the hypervisor tests run as (tests of several installations make their own).
INSTALLATION = "1a57a11a-0000-4000-8000-000000000001"


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll until condition() holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def host_xml_file(path: Path, memory_mb: int, cpus: int = 4) -> Path:
    """A libvirt test-driver host (test:///PATH): a private, in-process fake with this much memory."""
    node = ET.Element("node")
    cpu = ET.SubElement(node, "cpu")
    for tag, value in (
        ("mhz", "2000"),
        ("model", "x86_64"),
        ("active", str(cpus)),
        ("nodes", "1"),
        ("sockets", "1"),
        ("cores", str(cpus)),
        ("threads", "1"),
    ):
        ET.SubElement(cpu, tag).text = value
    ET.SubElement(node, "memory").text = str(memory_mb * 1024)
    path.write_text(ET.tostring(node, encoding="unicode"))
    return path


TEST_DRIVE = "aaaaaaaa-0000-4000-8000-000000000001"


def server_xml(server: str, mem: int = 64, props: dict[str, str] | None = None) -> str:
    """Domain XML for a small server with one IDE disk and one NIC (the files need not exist on
    test:/// hosts)."""
    config = parse_config(
        {
            "name": "test",
            "cpu": "1000",
            "mem": str(mem),
            "ide:0:0": TEST_DRIVE,
            "nic:0:model": "virtio",
            **(props or {}),
        },
        server,
    )
    disks = {Device("ide", 0, 0): DiskSpec(f"/pool/{TEST_DRIVE}.raw", "raw")}
    return domain_xml(
        DomainSpec(
            server, config, disks, serial_log=f"/logs/{server}.log", domain_type="qemu", installation=INSTALLATION
        )
    )


class EventLog:
    """Collects (server, event) pairs the hypervisor delivers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def __call__(self, server: str, event: str) -> None:
        self.events.append((server, event))

    def of(self, server: str) -> list[str]:
        return [event for s, event in self.events if s == server]


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
async def test_hypervisor(events: EventLog) -> AsyncIterator[LibvirtHypervisor]:
    """A hypervisor on one test:///default host with 1000 MB to give."""
    hypervisor = LibvirtHypervisor([HostConfig("test", "test:///default", mem_mb=1000)], installation=INSTALLATION)
    hypervisor.on_event(events)
    await hypervisor.open()
    try:
        yield hypervisor
    finally:
        await hypervisor.close()
