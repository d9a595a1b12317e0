"""The hypervisor on libvirt: servers as transient domains on a set of hosts, with lifecycle events.
LibvirtHypervisor is the Hypervisor the service uses; each concept lives in its own module."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import libvirtaio

from elastic_api.config import Config, HostConfig
from elastic_api.errors import InternalError
from elastic_api.hypervisor.base import DomainSample, DomainStats, EventHandler, HostHandler
from elastic_api.hypervisor.libvirt.domains import Domains
from elastic_api.hypervisor.libvirt.events import Events
from elastic_api.hypervisor.libvirt.hosts import Hosts
from elastic_api.hypervisor.libvirt.loop import drain, ensure_event_loop
from elastic_api.hypervisor.libvirt.networks import Networks
from elastic_api.hypervisor.libvirt.secrets import Secrets
from elastic_api.hypervisor.network import PublicNetwork
from elastic_api.model.ids import is_id

# libvirt frees closed handles and timers through the event loop; this long is plenty.
DRAIN_TIMEOUT_S = 1.0


class LibvirtHypervisor:
    """Servers as transient libvirt domains (UUID = the server's, name `elastic-<uuid>`) on the
    configured hosts. All methods are coroutines that keep libvirt's blocking calls off the loop;
    libvirt's failures surface as FailedError with a client-safe message (details are logged).

    One libvirtd may serve several installations. Every domain, network and secret this one makes
    carries its installation ID (domain.installation_of, domain.secret_owner), and listing,
    sweeping and events act only on objects with that ID. Objects from before installation IDs
    carry none: a domain or secret without an ID is adopted when the caller names its server
    (`adopt`: the servers its database knows), and is left alone otherwise. Memory placement
    counts every `elastic-` guest on a host, whoever runs it: they all hold memory."""

    def __init__(
        self,
        hosts: Sequence[HostConfig],
        *,
        installation: str,
        host_core_mhz: int = 2000,
        reconnect_interval: float = 5.0,
    ) -> None:
        self._hosts = Hosts(hosts, reconnect_interval=reconnect_interval)
        if not is_id(installation):
            raise InternalError(f"the hypervisor needs the installation's ID, not {installation!r}")
        self.installation = installation
        # Servers whose domains are known to be ours, shared by the domains and the events.
        ours: set[str] = set()
        self._events = Events(self._hosts, installation, ours)
        self._networks = Networks(self._hosts, installation)
        self._secrets = Secrets(self._hosts, installation)
        self._domains = Domains(self._hosts, self._secrets, installation, ours, host_core_mhz=host_core_mhz)
        self._impl: libvirtaio.virEventAsyncIOImpl | None = None

    @classmethod
    def from_config(cls, config: Config, installation: str) -> LibvirtHypervisor:
        return cls(
            config.hosts,
            installation=installation,
            host_core_mhz=config.host_core_mhz,
            reconnect_interval=config.host_reconnect_interval,
        )

    @property
    def host_names(self) -> tuple[str, ...]:
        return self._hosts.names

    def hosts_connected(self) -> dict[str, bool]:
        return self._hosts.connected()

    # --- connections and events ---------------------------------------------------------------

    async def open(self) -> None:
        """Hook libvirt's events into the running loop and connect to every host (one that cannot
        be reached is retried later: see Hosts.open)."""
        self._impl = ensure_event_loop()
        self._events.start()
        await self._hosts.open()

    async def close(self) -> None:
        await self._events.close()
        await self._hosts.close()
        if self._impl is not None:
            await drain(self._impl, DRAIN_TIMEOUT_S)

    def on_event(self, handler: EventHandler | None) -> None:
        self._events.on_event(handler)

    def on_host_back(self, handler: HostHandler | None) -> None:
        self._events.on_host_back(handler)

    # --- hosts --------------------------------------------------------------------------------

    async def kvm_available(self, host: str) -> bool:
        return await self._hosts.kvm_available(host)

    async def domain_type(self, host: str) -> str:
        return await self._hosts.domain_type(host)

    async def room_mb(self, host: str) -> int:
        return await self._hosts.room_mb(host)

    async def place(
        self, mem_mb: int, avoid_hosts: Collection[str] = (), *, only: Collection[str] | None = None
    ) -> str:
        return await self._hosts.place(mem_mb, avoid_hosts, only=only)

    # --- networks -----------------------------------------------------------------------------

    async def ensure_network(self, host: str, name: str, bridge: str | None = None) -> None:
        await self._networks.ensure_network(host, name, bridge)

    async def ensure_public_network(self, host: str, public: PublicNetwork) -> None:
        await self._networks.ensure_public_network(host, public)

    async def dhcp_hosts(self, host: str, name: str) -> dict[str, str] | None:
        return await self._networks.dhcp_hosts(host, name)

    async def set_dhcp_host(self, host: str, name: str, mac: str, ip: str, ours: Collection[str]) -> None:
        await self._networks.set_dhcp_host(host, name, mac, ip, ours)

    async def remove_dhcp_host(self, host: str, name: str, mac: str, ip: str) -> None:
        await self._networks.remove_dhcp_host(host, name, mac, ip)

    async def networks(self, host: str, prefix: str) -> list[str]:
        return await self._networks.networks(host, prefix)

    async def remove_network(self, host: str, name: str) -> None:
        await self._networks.remove_network(host, name)

    # --- secrets ------------------------------------------------------------------------------

    async def remove_secrets(self, host: str, server: str) -> None:
        await self._secrets.remove_secrets(host, server)

    async def sweep_secrets(
        self, running: Collection[str], adopt: Collection[str] = (), hosts: Collection[str] | None = None
    ) -> None:
        await self._secrets.sweep_secrets(running, adopt, hosts)

    # --- servers ------------------------------------------------------------------------------

    async def start(self, host: str, xml: str, secrets: Mapping[str, bytes] | None = None) -> None:
        await self._domains.start(host, xml, secrets)

    async def stop(self, host: str, server: str) -> None:
        await self._domains.stop(host, server)

    async def shutdown(self, host: str, server: str) -> None:
        await self._domains.shutdown(host, server)

    async def reset(self, host: str, server: str) -> None:
        await self._domains.reset(host, server)

    async def set_cpu_live(self, host: str, server: str, cpu_mhz: int) -> None:
        await self._domains.set_cpu_live(host, server, cpu_mhz)

    async def set_vnc_password_live(self, host: str, server: str, password: str) -> None:
        await self._domains.set_vnc_password_live(host, server, password)

    async def stats(self, host: str, server: str) -> DomainStats:
        return await self._domains.stats(host, server)

    async def samples(self, host: str, servers: Collection[str]) -> list[DomainSample]:
        return await self._domains.samples(host, servers)

    async def running(self, adopt: Collection[str] = (), hosts: Collection[str] | None = None) -> dict[str, str]:
        return await self._domains.running(adopt, hosts)


__all__ = ["LibvirtHypervisor"]
