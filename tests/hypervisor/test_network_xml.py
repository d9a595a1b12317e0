"""Network XML: golden files for the public and VLAN networks, libvirt accepting them, and the
reading back of reservations.

Regenerate the golden files after an intended change with ELASTIC_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from elastic_api.hypervisor.network import (
    MAX_BRIDGE_NAME,
    PublicNetwork,
    dhcp_host_xml,
    dhcp_hosts,
    isolated_network_xml,
    public_network_differs,
    public_network_xml,
    vlan_bridge,
)

from tests.hypervisor.conftest import INSTALLATION

GOLDEN = Path(__file__).parent / "golden_networks"
UPDATE = os.environ.get("ELASTIC_UPDATE_GOLDEN") == "1"
PUBLIC = PublicNetwork(
    name="elastic-public",
    gateway="198.51.100.1",
    netmask="255.255.255.0",
    first="198.51.100.10",
    last="198.51.100.254",
    nameserver="192.0.2.53",
)
VLAN = "0ddba11a-0000-4000-8000-000000000000"
CASES = {
    "public": public_network_xml(PUBLIC, INSTALLATION),
    "vlan": isolated_network_xml(f"elastic-vlan-{VLAN}", INSTALLATION, vlan_bridge(VLAN)) + "\n",
    "isolated_default": isolated_network_xml("elastic-isolated", INSTALLATION) + "\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    path = GOLDEN / f"{name}.xml"
    if UPDATE:
        path.write_text(CASES[name])
    expected = path.read_text()
    if CASES[name] != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), CASES[name].splitlines(True)))
        pytest.fail(f"network XML differs from {path.name} (ELASTIC_UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.xml")} == set(CASES)


def test_public_network_is_isolated_with_dhcp_over_the_pool() -> None:
    root = ET.fromstring(CASES["public"])
    assert root.find("forward") is None
    ip = root.find("ip")
    assert ip is not None and ip.attrib == {"address": "198.51.100.1", "netmask": "255.255.255.0"}
    assert root.find("ip/dhcp/range").attrib == {"start": "198.51.100.10", "end": "198.51.100.254"}  # type: ignore[union-attr]
    assert "dhcp-option=option:dns-server,192.0.2.53" in CASES["public"]
    assert public_network_differs(CASES["public"], PUBLIC) is None


@pytest.mark.parametrize(
    "change, word",
    [
        ({"gateway": "198.51.100.2"}, "address"),
        ({"netmask": "255.255.0.0"}, "address"),
        ({"first": "198.51.100.11"}, "range"),
        ({"last": "198.51.100.200"}, "range"),
    ],
)
def test_a_public_network_with_other_addressing_differs(change: dict[str, str], word: str) -> None:
    wanted = PublicNetwork(**{**PUBLIC.__dict__, **change})
    assert word in (public_network_differs(CASES["public"], wanted) or "")
    forwarding = CASES["public"].replace("<dns", "<forward mode='nat'/><dns")
    assert public_network_differs(forwarding, PUBLIC) == "it forwards traffic"


def test_vlan_bridges_are_short_deterministic_and_distinct() -> None:
    vlans = [str(uuid.uuid4()) for _ in range(1000)]
    bridges = [vlan_bridge(v) for v in vlans]
    assert all(len(b) <= MAX_BRIDGE_NAME and re.fullmatch(r"evl[0-9a-f]{12}", b) for b in bridges)
    assert len(set(bridges)) == len(vlans)
    assert vlan_bridge(VLAN) == vlan_bridge(VLAN) == "evl" + vlan_bridge(VLAN)[3:]


def test_dhcp_hosts_read_back() -> None:
    root = ET.fromstring(CASES["public"])
    dhcp = root.find("ip/dhcp")
    assert dhcp is not None
    dhcp.append(ET.fromstring(dhcp_host_xml("02:00:00:00:00:0A", "198.51.100.10")))
    dhcp.append(ET.fromstring(dhcp_host_xml("02:00:00:00:00:0b", "198.51.100.11")))
    assert dhcp_hosts(ET.tostring(root, encoding="unicode")) == {
        "02:00:00:00:00:0a": "198.51.100.10",
        "02:00:00:00:00:0b": "198.51.100.11",
    }
    assert dhcp_hosts(CASES["vlan"]) == {}


@pytest.mark.parametrize("uri", ["test:///default", pytest.param("system", marks=pytest.mark.libvirt)])
def test_libvirt_accepts_the_networks(uri: str, request: pytest.FixtureRequest) -> None:
    """Each network starts on libvirt (the real libvirtd too, under a name and subnet of this
    test's own) and takes a reservation live; all are removed however the test ends."""
    if uri == "system":
        uri = request.getfixturevalue("system_libvirt")
    tag = secrets.token_hex(4)
    third = secrets.randbelow(256)
    public = PublicNetwork(
        name=f"elastic-t{tag}-public",
        gateway=f"198.19.{third}.1",
        netmask="255.255.255.0",
        first=f"198.19.{third}.10",
        last=f"198.19.{third}.20",
        nameserver=f"198.19.{third}.1",
    )
    vlan = str(uuid.uuid4())
    conn = libvirt.open(uri)
    made = []
    try:
        for xml in (
            public_network_xml(public, INSTALLATION),
            isolated_network_xml(f"elastic-t{tag}-vlan-{vlan}", INSTALLATION, vlan_bridge(vlan)),
        ):
            made.append(conn.networkCreateXML(xml))
        made[0].update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            dhcp_host_xml("02:00:00:00:00:01", public.first),
            libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE,
        )
        assert dhcp_hosts(made[0].XMLDesc(0)) == {"02:00:00:00:00:01": public.first}
        assert public_network_differs(made[0].XMLDesc(0), public) is None
        if not uri.startswith("test:"):
            assert made[1].bridgeName() == vlan_bridge(vlan)
    finally:
        for network in made:
            network.destroy()
        conn.close()
