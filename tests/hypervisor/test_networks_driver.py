"""The driver's network calls: creation races, reservations replacing stale ones, removal."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import libvirt
import pytest

from elastic_api.config import HostConfig
from elastic_api.errors import FailedError
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from elastic_api.hypervisor.libvirt.networks import _create_network
from elastic_api.hypervisor.network import PublicNetwork, isolated_network_xml, vlan_bridge
from tests.hypervisor.conftest import INSTALLATION


@pytest.fixture(params=["test", pytest.param("system", marks=pytest.mark.libvirt)])
async def hypervisor(request: pytest.FixtureRequest):
    """One driver on a test:/// host, or on the real libvirtd (networks named for this test only,
    all removed at the end)."""
    uri = "test:///default"
    if request.param == "system":
        uri = request.getfixturevalue("system_libvirt")
    driver = LibvirtHypervisor([HostConfig("h", uri)], installation=INSTALLATION)
    await driver.open()
    prefix = f"elastic-t{secrets.token_hex(4)}-"
    try:
        yield driver, prefix
    finally:
        for name in await driver.networks("h", prefix):
            await driver.remove_network("h", name)
        await driver.close()


async def test_concurrent_creates_share_one_network(hypervisor):
    driver, prefix = hypervisor
    vlan = str(uuid.uuid4())
    name = f"{prefix}vlan-{vlan}"
    await asyncio.gather(*(driver.ensure_network("h", name, vlan_bridge(vlan)) for _ in range(4)))
    assert await driver.networks("h", prefix) == [name]
    # A create that loses the race to another process takes the winner's network.
    conn = await driver._hosts.host("h").connection()
    network = await asyncio.to_thread(
        _create_network, conn, name, isolated_network_xml(name, INSTALLATION, vlan_bridge(vlan))
    )
    assert network.name() == name and await driver.networks("h", prefix) == [name]
    await driver.remove_network("h", name)
    await driver.remove_network("h", name)  # already gone: nothing to do
    assert await driver.networks("h", prefix) == []


async def test_reservations_replace_stale_ones(hypervisor):
    driver, prefix = hypervisor
    third = secrets.randbelow(256)
    public = PublicNetwork(
        name=f"{prefix}public",
        gateway=f"198.19.{third}.1",
        netmask="255.255.255.0",
        first=f"198.19.{third}.10",
        last=f"198.19.{third}.20",
        nameserver=f"198.19.{third}.1",
    )
    assert await driver.dhcp_hosts("h", public.name) is None
    await asyncio.gather(*(driver.ensure_public_network("h", public) for _ in range(3)))
    a, b = f"198.19.{third}.10", f"198.19.{third}.11"
    ours = {"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"}
    await driver.set_dhcp_host("h", public.name, "02:00:00:00:00:01", a, ours)
    await driver.set_dhcp_host("h", public.name, "02:00:00:00:00:02", b, ours)
    # The database gave a to another of our MACs: the old holder's reservation of it goes.
    await driver.set_dhcp_host("h", public.name, "02:00:00:00:00:03", a, ours)
    assert await driver.dhcp_hosts("h", public.name) == {"02:00:00:00:00:02": b, "02:00:00:00:00:03": a}
    # A MAC none of our servers has holds a: another installation's guest; never taken from it.
    with pytest.raises(FailedError, match="another installation"):
        await driver.set_dhcp_host("h", public.name, "02:00:00:00:00:04", a, ours - {"02:00:00:00:00:03"})
    assert await driver.dhcp_hosts("h", public.name) == {"02:00:00:00:00:02": b, "02:00:00:00:00:03": a}
    await driver.remove_dhcp_host("h", public.name, "02:00:00:00:00:01", a)  # not its reservation any more
    await driver.remove_dhcp_host("h", public.name, "02:00:00:00:00:03", a)
    assert await driver.dhcp_hosts("h", public.name) == {"02:00:00:00:00:02": b}
    await driver.remove_dhcp_host("h", f"{prefix}none", "02:00:00:00:00:02", b)  # no network: nothing to do

    other = PublicNetwork(**{**public.__dict__, "first": f"198.19.{third}.11"})
    with pytest.raises(FailedError, match="other addressing"):
        await driver.ensure_public_network("h", other)
    with pytest.raises(FailedError):
        await driver.set_dhcp_host("h", f"{prefix}none", "02:00:00:00:00:02", b, ours)
    with pytest.raises(libvirt.libvirtError):
        conn = await driver._hosts.host("h").connection()
        conn.networkLookupByName(f"{prefix}none")
