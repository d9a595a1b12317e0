"""Libvirt network XML for the public network and VLANs, built and read by pure functions."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from elastic_api.hypervisor.domain import metadata_element

# libvirt's namespace for raw dnsmasq options: the only way to hand out a nameserver that is not
# dnsmasq itself.
DNSMASQ_NS = "http://libvirt.org/schemas/network/dnsmasq/1.0"
# Linux interface names hold at most 15 characters (IFNAMSIZ 16 with the NUL).
MAX_BRIDGE_NAME = 15
VLAN_BRIDGE_PREFIX = "evl"


@dataclass(frozen=True)
class PublicNetwork:
    """The public network as the operator's pool describes it: the host is the gateway, DHCP
    serves first-last (every guest NIC on it has a reservation), nothing is forwarded."""

    name: str
    gateway: str
    netmask: str
    first: str
    last: str
    nameserver: str


def vlan_bridge(vlan: str) -> str:
    """The bridge of a VLAN's network: `evl` and 12 hex digits of a hash of its UUID, so it is the
    same on every host and after every restart, and fits the kernel's 15 characters."""
    name = VLAN_BRIDGE_PREFIX + hashlib.sha256(vlan.encode()).hexdigest()[:12]
    assert len(name) <= MAX_BRIDGE_NAME
    return name


def isolated_network_xml(name: str, installation: str, bridge: str | None = None) -> str:
    """A bridge with no forwarding, no host address and no DHCP: guests on it reach each other only.
    Its <metadata> names the installation that made it (see domain.installation_of)."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    root.append(metadata_element(installation))
    attrs = {"stp": "on", "delay": "0"}
    if bridge is not None:
        attrs = {"name": bridge, **attrs}
    ET.SubElement(root, "bridge", attrs)
    return ET.tostring(root, encoding="unicode")


def public_network_xml(network: PublicNetwork, installation: str) -> str:
    """The public network: no <forward> (isolated: the host routes nothing for guests), the
    gateway as the host's address, DHCP over the pool's range, no DNS server of its own. Its
    <metadata> names the installation that made it; others with the same addressing share it."""
    ET.register_namespace("dnsmasq", DNSMASQ_NS)
    root = ET.Element("network")
    ET.SubElement(root, "name").text = network.name
    root.append(metadata_element(installation))
    ET.SubElement(root, "bridge", stp="on", delay="0")
    # dnsmasq would otherwise answer (and forward) guests' DNS from the host.
    ET.SubElement(root, "dns", enable="no")
    ip = ET.SubElement(root, "ip", address=network.gateway, netmask=network.netmask)
    dhcp = ET.SubElement(ip, "dhcp")
    ET.SubElement(dhcp, "range", start=network.first, end=network.last)
    options = ET.SubElement(root, f"{{{DNSMASQ_NS}}}options")
    ET.SubElement(options, f"{{{DNSMASQ_NS}}}option", value=f"dhcp-option=option:dns-server,{network.nameserver}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def dhcp_host_xml(mac: str, ip: str) -> str:
    """One DHCP host reservation, as virNetworkUpdate takes it."""
    return ET.tostring(ET.Element("host", mac=mac, ip=ip), encoding="unicode")


def dhcp_hosts(xml: str) -> dict[str, str]:
    """MAC → IP of every DHCP host reservation in a network's XML."""
    root = ET.fromstring(xml)
    return {
        host.get("mac", "").lower(): host.get("ip", "")
        for host in root.iterfind("ip/dhcp/host")
        if host.get("mac") and host.get("ip")
    }


def public_network_differs(xml: str, network: PublicNetwork) -> str | None:
    """What of an existing network's addressing differs from the pool's, or None when it matches."""
    root = ET.fromstring(xml)
    if root.find("forward") is not None:
        return "it forwards traffic"
    ip = root.find("ip")
    if ip is None:
        return "it has no address"
    found = (ip.get("address"), ip.get("netmask"))
    if found != (network.gateway, network.netmask):
        return f"its address is {found[0]}/{found[1]}"
    dhcp_range = ip.find("dhcp/range")
    if dhcp_range is None or (dhcp_range.get("start"), dhcp_range.get("end")) != (network.first, network.last):
        return "its DHCP range differs"
    return None


__all__ = [
    "MAX_BRIDGE_NAME",
    "PublicNetwork",
    "dhcp_host_xml",
    "dhcp_hosts",
    "isolated_network_xml",
    "public_network_differs",
    "public_network_xml",
    "vlan_bridge",
]
