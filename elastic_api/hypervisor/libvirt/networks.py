"""Libvirt networks: the isolated ones (NICs on no network, VLANs), the public one, and the DHCP
reservations in them. Made transient with our installation ID; one that exists is shared."""

from __future__ import annotations

import logging
from collections.abc import Collection

import libvirt

from elastic_api.errors import FailedError
from elastic_api.hypervisor.domain import installation_of
from elastic_api.hypervisor.libvirt.hosts import Hosts
from elastic_api.hypervisor.network import (
    PublicNetwork,
    dhcp_host_xml,
    dhcp_hosts,
    isolated_network_xml,
    public_network_differs,
    public_network_xml,
)


def _lookup_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise
        return None


def _create_network(conn: libvirt.virConnect, name: str, xml: str) -> libvirt.virNetwork:
    """Create a transient network, or take the one a concurrent caller (another start, another
    API process) created first: libvirt then refuses ours with an operation-failed error."""
    try:
        return conn.networkCreateXML(xml)
    except libvirt.libvirtError:
        network = _lookup_network(conn, name)
        if network is None:
            raise
        return network


def _update_dhcp_host(network: libvirt.virNetwork, command: int, mac: str, ip: str) -> None:
    """One change to a running network's DHCP reservations; a persistent network's saved config
    changes with it, so a restarted network still knows them."""
    flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    if network.isPersistent():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    network.update(command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, dhcp_host_xml(mac, ip), flags)


class Networks:
    def __init__(self, hosts: Hosts, installation: str) -> None:
        self._hosts = hosts
        self._installation = installation
        self._log = logging.getLogger(__name__)

    async def ensure_network(self, host: str, name: str, bridge: str | None = None) -> None:
        """An isolated libvirt network (a bridge with no forwarding, no host address, no DHCP) by
        this name, created transient (with our installation ID) when missing: NICs on no other
        network, and each VLAN (whose bridge name the caller derives). One that exists is used
        whoever made it: the default isolated network is shared by the installations on a host."""

        def ensure(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name) or _create_network(
                conn, name, isolated_network_xml(name, self._installation, bridge)
            )
            if not network.isActive():
                network.create()

        await self._hosts.call(host, f"set up network {name}", ensure)

    async def ensure_public_network(self, host: str, public: PublicNetwork) -> None:
        """The public network on host (see network.public_network_xml), created transient (with
        our installation ID) when missing. One that exists is shared, whichever installation made
        it, and never removed by us; one with other addressing is not ours to change under running
        guests: FailedError, and the operator removes it or fixes the pool."""

        def ensure(conn: libvirt.virConnect) -> str | None:
            network = _lookup_network(conn, public.name) or _create_network(
                conn, public.name, public_network_xml(public, self._installation)
            )
            if not network.isActive():
                network.create()
            return public_network_differs(network.XMLDesc(0), public)

        differs = await self._hosts.call(host, f"set up network {public.name}", ensure)
        if differs is not None:
            self._log.error("host %s: network %s does not match the ip_pool config: %s", host, public.name, differs)
            raise FailedError(f"could not set up the public network on host {host}: it exists with other addressing")

    async def dhcp_hosts(self, host: str, name: str) -> dict[str, str] | None:
        """MAC → IP of the DHCP reservations in network `name`, or None when it does not exist."""

        def read(conn: libvirt.virConnect) -> dict[str, str] | None:
            network = _lookup_network(conn, name)
            return None if network is None else dhcp_hosts(network.XMLDesc(0))

        return await self._hosts.call(host, f"read network {name}", read)

    async def set_dhcp_host(self, host: str, name: str, mac: str, ip: str, ours: Collection[str]) -> None:
        """Reserve ip for mac in network `name`, live (and in its persistent config, if it has
        one). Reservations left over for this MAC, or for this IP and a MAC in `ours` (the NICs
        of the caller's own servers), go first: the database, not libvirt, says who holds an
        address. An IP reserved for a MAC not in `ours` belongs to another installation sharing
        the network, and is never taken from it: FailedError."""
        replaceable = {m.lower() for m in ours} | {mac.lower()}

        def update(conn: libvirt.virConnect) -> str | None:
            network = conn.networkLookupByName(name)
            reserved = dhcp_hosts(network.XMLDesc(0))
            for old_mac, old_ip in reserved.items():
                if old_ip == ip and old_mac not in replaceable:
                    return old_mac
            for old_mac, old_ip in reserved.items():
                if old_mac == mac or old_ip == ip:
                    _update_dhcp_host(network, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, old_mac, old_ip)
            _update_dhcp_host(network, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, mac, ip)
            return None

        holder = await self._hosts.call(host, f"reserve {ip} in network {name}", update)
        if holder is not None:
            self._log.error(
                "host %s: %s in network %s is reserved for %s, a NIC this installation does not know",
                host,
                ip,
                name,
                holder,
            )
            raise FailedError(
                f"could not reserve {ip} on host {host}: another installation sharing the network holds it"
            )

    async def remove_dhcp_host(self, host: str, name: str, mac: str, ip: str) -> None:
        """Drop the reservation of ip for mac; a missing network or reservation is already done."""

        def update(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name)
            if network is not None and dhcp_hosts(network.XMLDesc(0)).get(mac) == ip:
                _update_dhcp_host(network, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, mac, ip)

        await self._hosts.call(host, f"release {ip} in network {name}", update)

    async def networks(self, host: str, prefix: str) -> list[str]:
        """Names of the networks on host that start with prefix and carry our installation ID.
        Those without an ID (made before installation IDs) or with another's are not listed: no
        name can prove that a network nobody claims was ours."""

        def names(conn: libvirt.virConnect) -> list[str]:
            found = []
            for network in conn.listAllNetworks():
                if not network.name().startswith(prefix):
                    continue
                try:
                    owner = installation_of(network.XMLDesc(0))
                except libvirt.libvirtError:
                    continue  # removed since the list was taken
                if owner == self._installation:
                    found.append(network.name())
                else:
                    self._log.debug("host %s: network %s is not this installation's", host, network.name())
            return sorted(found)

        return await self._hosts.call(host, "list networks", names)

    async def remove_network(self, host: str, name: str) -> None:
        """Stop network `name` and forget it; one that does not exist is already gone. One that
        carries another installation's ID is left alone (logged): only its maker removes it. One
        without an ID (made before installation IDs) is the caller's by its name (a VLAN's UUID)."""

        def remove(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name)
            if network is None:
                return
            owner = installation_of(network.XMLDesc(0))
            if owner is not None and owner != self._installation:
                self._log.warning("host %s: network %s belongs to installation %s; not removed", host, name, owner)
                return
            persistent = network.isPersistent()
            if network.isActive():
                network.destroy()
            if persistent:
                network.undefine()

        await self._hosts.call(host, f"remove network {name}", remove)
