"""Two installations on one host (libvirt's in-process test driver, shared by every connection in
this process): each lists, stops, sweeps and hears only its own domains and networks; domains
and networks from before installation IDs are adopted only when the caller names them."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import libvirt
import pytest

from elastic_api.config import HostConfig
from elastic_api.errors import InternalError
from elastic_api.hypervisor.domain import installation_of
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from tests.hypervisor.conftest import INSTALLATION, EventLog, server_xml, wait_for

OTHER = "0e000000-0000-4000-8000-000000000002"


def other_xml(server: str) -> str:
    return server_xml(server).replace(INSTALLATION, OTHER)


def legacy_xml(server: str) -> str:
    """A domain as made before installation IDs: no <metadata>."""
    xml = re.sub(r"\s*<metadata>.*?</metadata>", "", server_xml(server), flags=re.S)
    assert installation_of(xml) is None
    return xml


@pytest.fixture
async def other(events: EventLog) -> AsyncIterator[tuple[LibvirtHypervisor, EventLog]]:
    """A second installation on the same test:///default host as test_hypervisor."""
    log = EventLog()
    hypervisor = LibvirtHypervisor([HostConfig("test", "test:///default", mem_mb=1000)], installation=OTHER)
    hypervisor.on_event(log)
    await hypervisor.open()
    try:
        yield hypervisor, log
    finally:
        await hypervisor.close()


async def test_each_lists_and_hears_only_its_own(
    test_hypervisor: LibvirtHypervisor, events: EventLog, other: tuple[LibvirtHypervisor, EventLog]
) -> None:
    hypervisor_b, events_b = other
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    await hypervisor_b.start("test", other_xml(theirs))
    await test_hypervisor.start("test", server_xml(mine))
    try:
        assert await test_hypervisor.running() == {mine: "test"}
        assert await hypervisor_b.running() == {theirs: "test"}
        # Adoption is for domains without an ID: naming another installation's server changes nothing.
        assert await test_hypervisor.running(adopt={theirs}) == {mine: "test"}
        await wait_for(
            lambda: events.of(mine) == ["started"] and events_b.of(theirs) == ["started"],
            what="each installation's started event",
        )

        await hypervisor_b.stop("test", theirs)
        await wait_for(lambda: events_b.of(theirs) == ["started", "stopped"], what="the other's stopped event")
        # Events come in order: once our own stop is heard, theirs would have been heard before it.
        await test_hypervisor.stop("test", mine)
        await wait_for(lambda: events.of(mine) == ["started", "stopped"], what="our stopped event")
        assert events.of(theirs) == [] and events_b.of(mine) == []
    finally:
        for hypervisor, server in ((test_hypervisor, mine), (hypervisor_b, theirs)):
            await hypervisor.stop("test", server)


async def test_a_domain_of_another_installation_is_never_started_as_ours(test_hypervisor: LibvirtHypervisor) -> None:
    server = str(uuid.uuid4())
    for xml in (other_xml(server), legacy_xml(server)):
        with pytest.raises(InternalError, match="installation"):
            await test_hypervisor.start("test", xml)
    assert server not in await test_hypervisor.running(adopt={server})


async def test_domains_from_before_installation_ids_are_adopted_by_name(
    test_hypervisor: LibvirtHypervisor,
    events: EventLog,
    other: tuple[LibvirtHypervisor, EventLog],
) -> None:
    hypervisor_b, events_b = other
    legacy, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    conn = libvirt.open("test:///default")
    try:
        conn.createXML(legacy_xml(legacy), 0)
        conn.createXML(legacy_xml(stranger), 0)
        assert await test_hypervisor.running() == {}  # no ID: nobody's until adopted
        assert await test_hypervisor.running(adopt={legacy}) == {legacy: "test"}
        assert await test_hypervisor.running() == {legacy: "test"}  # adopted once is adopted
        assert await hypervisor_b.running() == {}
        # An adopted domain's stop is ours to hear; a stranger's is nobody's.
        conn.lookupByUUIDString(stranger).destroy()
        conn.lookupByUUIDString(legacy).destroy()
        await wait_for(lambda: events.of(legacy) == ["stopped"], what="the adopted domain's stopped event")
        assert events.of(stranger) == [] and events_b.events == []
    finally:
        for server in (legacy, stranger):
            try:
                conn.lookupByUUIDString(server).destroy()
            except libvirt.libvirtError:
                pass
        conn.close()


async def test_networks_are_listed_and_removed_by_their_maker_only(
    test_hypervisor: LibvirtHypervisor,
    other: tuple[LibvirtHypervisor, EventLog],
) -> None:
    hypervisor_b, _ = other
    prefix = f"elastic-t{uuid.uuid4().hex[:8]}-vlan-"
    mine, theirs, legacy = (f"{prefix}{uuid.uuid4()}" for _ in range(3))
    await test_hypervisor.ensure_network("test", mine)
    await hypervisor_b.ensure_network("test", theirs)
    conn = libvirt.open("test:///default")
    try:
        conn.networkCreateXML(f"<network><name>{legacy}</name><bridge stp='on' delay='0'/></network>")
        assert await test_hypervisor.networks("test", prefix) == [mine]
        assert await hypervisor_b.networks("test", prefix) == [theirs]
        await test_hypervisor.remove_network("test", theirs)  # another's: left alone
        assert conn.networkLookupByName(theirs).isActive()
        await test_hypervisor.remove_network("test", mine)
        await test_hypervisor.remove_network("test", legacy)  # no ID: the caller's by its name
        assert sorted(n.name() for n in conn.listAllNetworks() if n.name().startswith(prefix)) == [theirs]
        # A network another installation made is shared, not remade: the default isolated network.
        await test_hypervisor.ensure_network("test", theirs)
        assert installation_of(conn.networkLookupByName(theirs).XMLDesc(0)) == OTHER
    finally:
        for network in conn.listAllNetworks():
            if network.name().startswith(prefix):
                network.destroy()
        conn.close()
