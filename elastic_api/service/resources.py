"""Resources: users' static IPs and VLANs, and the networks they wire running servers into."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from elastic_api.config import Config
from elastic_api.errors import FailedError, FullError, MissingError
from elastic_api.hypervisor import Hypervisor
from elastic_api.hypervisor.network import PublicNetwork, vlan_bridge
from elastic_api.model import resource as model
from elastic_api.model.ids import is_id, new_id
from elastic_api.model.pages import Page
from elastic_api.model.resource import IP, VLAN, Lease, PoolInfo, Resource, ResourceChanges, ResourceSpec
from elastic_api.model.server import ServerConfig, mac_of
from elastic_api.model.server_record import ServerRecord
from elastic_api.service.locks import NodeLocks
from elastic_api.service.quotas import QuotaService
from elastic_api.store import Store

log = logging.getLogger(__name__)


class ResourceService:
    def __init__(
        self,
        config: Config,
        store: Store,
        hypervisor: Hypervisor,
        clock: Callable[[], int] = time.time_ns,
        quotas: QuotaService | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.hypervisor = hypervisor
        self.quotas = quotas or QuotaService(config, store)
        self.clock = clock
        # Held around a network's changes: a VLAN's (created for a start, removed on destroy) by its
        # UUID, a host's public network (created by the first start that needs it) by the host.
        self.locks = NodeLocks(store, "resource")
        pool = config.ip_pool
        self.pool = PoolInfo(netmask=pool.netmask, gateway=pool.gateway, nameserver=pool.nameserver)
        self.public = PublicNetwork(
            name=config.public_network,
            gateway=pool.gateway,
            netmask=pool.netmask,
            first=pool.first,
            last=pool.last,
            nameserver=pool.nameserver,
        )

    # -- the resources themselves ---------------------------------------------------------------
    def vlan_network(self, vlan: str) -> str:
        return self.config.vlan_network_prefix + vlan

    async def get(self, user: str, type_: str, resource_id: str) -> Resource:
        """The user's resource; 404 alike for one that does not exist and another user's."""
        type_ = model.parse_type(type_)
        canonical = model.parse_resource(type_, resource_id)
        found = await self.store.get_resource(user, type_, canonical) if canonical else None
        if found is None:
            raise MissingError(f"no such {type_}: {resource_id[:40]}")
        return found

    async def visible(self, user: str, type_: str | None, page: Page) -> list[Resource]:
        if type_ is not None:
            type_ = model.parse_type(type_)
        marker = page.marker
        if marker is not None:
            marker = model.parse_any_resource(marker) or marker
        return await self.store.list_resources(user, type_, page.limit, marker)

    async def create(self, user: str, type_: str, spec: ResourceSpec) -> Resource:
        type_ = model.parse_type(type_)
        if type_ == VLAN:
            vlan = model.new_resource(new_id(), VLAN, user, spec, created=self.clock())
            await self.store.insert_resource(vlan)
            return await self.get(user, VLAN, vlan.resource)  # with the number the store gave it
        template = model.new_resource("", IP, user, spec, created=self.clock())
        async with self.quotas.ips(user):
            ip = await self.store.insert_ip_from_pool(template, self.config.ip_pool.first, self.config.ip_pool.last)
        if ip is None:
            raise FullError(f"the IP pool ({self.config.ip_pool.range}) has no free address")
        return ip

    async def set(self, user: str, type_: str, resource_id: str, changes: ResourceChanges) -> Resource:
        found = await self.get(user, type_, resource_id)
        changed = model.apply_changes(found, changes)
        if not await self.store.update_resource(user, changed):
            raise MissingError(f"no such {found.type}: {resource_id[:40]}")
        return changed

    async def destroy(self, user: str, type_: str, resource_id: str) -> None:
        """409 while any of the user's servers, active or stopped, names it: a stopped server's
        next start would otherwise fail on a resource that vanished under it."""
        found = await self.get(user, type_, resource_id)
        async with self.locks.hold(found.resource):
            if not await self.store.delete_resource(user, found.type, found.resource):
                raise MissingError(f"no such {found.type}: {resource_id[:40]}")
            if found.type == VLAN:
                # The row went first: a host that cannot be reached now keeps the network until
                # the next start-up's reconcile removes it.
                for host in self.hypervisor.host_names:
                    try:
                        await self.hypervisor.remove_network(host, self.vlan_network(found.resource))
                    except FailedError as e:
                        log.warning("VLAN %s: network left on host %s: %s", found.resource, host, e.message)

    # -- what servers ask of resources ----------------------------------------------------------
    async def check_references(self, user: str, config: ServerConfig) -> None:
        """Every IP (a NIC's address, the VNC address) and VLAN a configuration names must be the user's own;
        another user's answers like one that does not exist."""
        model.check_nics(config)
        for ip in model.static_ips(config):
            await self.get(user, IP, ip)
        for vlan in model.vlans(config):
            await self.get(user, VLAN, vlan)

    async def wire(self, record: ServerRecord, host: str) -> dict[int, str]:
        """Before an active server's guest starts on host: lease its NICs' addresses, reserve them
        in the host's public network and set up its VLANs' networks. Returns NIC index → libvirt
        network for the domain; NICs on neither keep the default isolated network. On failure
        nothing stays leased or reserved."""
        config = record.config
        model.check_nics(config)
        networks: dict[int, str] = {}
        for vlan in model.vlans(config):
            await self.get(record.owner, VLAN, vlan)
        static = [
            (nic.index, mac_of(record.server, nic), nic.dhcp)
            for nic in config.nics
            if nic.dhcp is not None and nic.dhcp != "auto"
        ]
        auto = [(nic.index, mac_of(record.server, nic)) for nic in config.nics if nic.dhcp == "auto"]
        try:
            if static or auto:
                leases = await self.store.lease_ips(
                    record.owner, record.server, static, auto, self.public.first, self.public.last
                )
                async with self.locks.hold(f"public network on {host}"):
                    await self.hypervisor.ensure_public_network(host, self.public)
                ours = await self.our_macs()
                for lease in leases:
                    await self.hypervisor.set_dhcp_host(host, self.public.name, lease.mac, lease.ip, ours)
                    networks[lease.nic] = self.public.name
            for nic in config.nics:
                if nic.vlan is not None:
                    async with self.locks.hold(nic.vlan):
                        # Looked up again under the lock: a destroy that won the race has removed
                        # the network, and must not see it made again.
                        await self.get(record.owner, VLAN, nic.vlan)
                        await self.hypervisor.ensure_network(host, self.vlan_network(nic.vlan), vlan_bridge(nic.vlan))
                    networks[nic.index] = self.vlan_network(nic.vlan)
        except BaseException:
            await self.unwire(record, host)
            raise
        return networks

    async def unwire(self, record: ServerRecord, host: str | None) -> None:
        """The server's guest is gone (or never came): drop its reservations and give back its
        addresses. Never fails: a host that cannot be reached is put right by the next reconcile."""
        leases = await self.store.server_leases(record.owner, record.server)
        if host is not None:
            for lease in leases:
                try:
                    await self.hypervisor.remove_dhcp_host(host, self.public.name, lease.mac, lease.ip)
                except FailedError as e:
                    log.warning(
                        "server %s: reservation of %s left on host %s: %s", record.server, lease.ip, host, e.message
                    )
        await self.store.release_leases(record.owner, record.server)

    async def our_macs(self) -> frozenset[str]:
        """The MACs of every NIC of every server in our database: the public network's DHCP
        reservations this installation may drop or replace. The public network is shared by the
        installations on a libvirtd (its reservations carry no installation ID, and a name on
        them would reach the guests as their hostname), so a reservation for any other MAC is
        another installation's, and is left alone."""
        return frozenset(
            mac_of(record.server, nic).lower()
            for record in await self.store.all_servers()
            for nic in record.config.nics
        )

    # -- start-up -------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """After the servers' own reconcile: forget addresses of servers that are not active;
        make each host's public network hold exactly the reservations of the leases of our servers
        running there (reservations for MACs none of our servers has are another installation's
        and stay); remove our VLAN networks (by our prefix and our installation ID) whose VLAN no
        longer exists. The public and the default isolated network are never removed: other
        installations' guests may use them. A host that cannot be reached is logged and left for
        the next start-up."""
        dropped = await self.store.drop_stale_leases()
        if dropped:
            log.info("released %d addresses of servers that are not running", dropped)
        wanted: dict[str, list[Lease]] = {}
        for host, lease in await self.store.active_leases():
            wanted.setdefault(host, []).append(lease)
        vlans = await self.store.all_vlan_ids()
        ours = await self.our_macs()
        for host in self.hypervisor.host_names:
            try:
                await self._reconcile_public(host, wanted.get(host, []), ours)
                await self._reconcile_vlans(host, vlans)
            except FailedError as e:
                log.error("host %s: networks not reconciled: %s", host, e.message)

    async def _reconcile_public(self, host: str, leases: list[Lease], ours: frozenset[str]) -> None:
        reserved = await self.hypervisor.dhcp_hosts(host, self.public.name)
        if reserved is None:
            if not leases:
                return  # made when a server first needs it
            await self.hypervisor.ensure_public_network(host, self.public)
            reserved = {}
        want = {lease.mac: lease.ip for lease in leases}
        for mac, ip in reserved.items():
            if mac not in ours:
                log.debug("host %s: reservation of %s for %s is another installation's", host, ip, mac)
            elif want.get(mac) != ip:
                log.info("host %s: dropping stale reservation of %s for %s", host, ip, mac)
                await self.hypervisor.remove_dhcp_host(host, self.public.name, mac, ip)
        for mac, ip in want.items():
            if reserved.get(mac) != ip:
                log.info("host %s: restoring reservation of %s for %s", host, ip, mac)
                await self.hypervisor.set_dhcp_host(host, self.public.name, mac, ip, ours)

    async def _reconcile_vlans(self, host: str, vlans: Collection[str]) -> None:
        prefix = self.config.vlan_network_prefix
        # Only networks with our installation ID are listed: another installation's VLAN networks,
        # and ones from before installation IDs (whose maker nothing records), are left alone.
        for name in await self.hypervisor.networks(host, prefix):
            vlan = name[len(prefix) :]
            if not is_id(vlan) or vlan in vlans:
                continue  # not named like one of ours, or still wanted
            log.info("host %s: removing network %s of a destroyed VLAN", host, name)
            await self.hypervisor.remove_network(host, name)


__all__ = ["ResourceService"]
