"""What the service layer asks of the hypervisor, and the typed values it answers.

Failures are neutral error kinds (elastic_api.errors): FailedError when the hypervisor refused or
could not do it (with a client-safe message), UnreachableError (a FailedError) when the host could
not be reached, FullError when no host has room. One libvirtd may serve several installations:
every method acts only on this installation's objects (domains, networks, secrets carrying its
installation ID, or adopted ones from before installation IDs) and never touches another's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from elastic_api.hypervisor.network import PublicNetwork
from elastic_api.model.device import Device

# `await handler(server_uuid, event)`; event is "started", "stopped", "paused" or "resumed".
EventHandler = Callable[[str, str], Awaitable[None]]
# `await handler(host)`: the host's connection is back after a loss; what happened meanwhile was
# never reported as events.
HostHandler = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class DriveStats:
    """One drive's I/O counters since its guest started."""

    read_bytes: int
    read_requests: int
    write_bytes: int
    write_requests: int


@dataclass(frozen=True)
class DomainStats:
    """A running server's counters and run-time facts, in no dialect's words.

    Network counters are summed over all NICs, as the guest sees them. `drives` holds the drives
    the guest has at a known Device, in the domain's order (a dialect renders them in it)."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    drives: Mapping[Device, DriveStats]
    sockets: int
    cores: int
    # The VNC display's TCP port, None when the server has no display or it has no port yet.
    vnc_port: int | None


@dataclass(frozen=True)
class DriveBytes:
    """One drive's bytes read and written since its guest started."""

    read_bytes: int
    write_bytes: int


@dataclass(frozen=True)
class DomainSample:
    """A running server's cumulative counters at one moment, from the host's bulk statistics:
    what a rate is computed from (between two samples of one run). Counters restart at 0 when
    the guest starts again."""

    server: str
    # When the counters were read: epoch seconds, UTC.
    at: float
    # CPU time all of the domain's threads have used, in nanoseconds.
    cpu_ns: int
    # The vCPUs the guest has now: what a CPU percentage is a share of.
    vcpus: int
    # The drives at a known Device (others, such as targets that are no position of ours, are left out).
    drives: Mapping[Device, DriveBytes]
    # Summed over all NICs, as the guest sees them.
    rx_bytes: int
    tx_bytes: int


@runtime_checkable
class HostStates(Protocol):
    """A hypervisor that can say, without a call to any host, which hosts it is connected to
    (the operators' metrics read it at every scrape)."""

    def hosts_connected(self) -> dict[str, bool]:
        """Host name → whether its connection is open and not known to be lost."""
        ...


class Hypervisor(Protocol):
    """What the service layer asks of the hypervisor (LibvirtHypervisor, or a fake in tests).
    Every method may raise FailedError, or UnreachableError when the host is out of reach; each
    says below what else it raises. Every object it lists, sweeps or reports events of is this
    installation's: another installation's domains, networks and secrets are never touched."""

    @property
    def host_names(self) -> tuple[str, ...]:
        """The configured hosts' names, in config order."""
        ...

    @property
    def installation(self) -> str:
        """This installation's ID, which every object it makes carries."""
        ...

    async def open(self) -> None:
        """Start delivering events and connect to every host. A host out of reach is not an
        error: it is retried in the background and on its next use."""
        ...

    async def close(self) -> None:
        """Stop delivering events and close every connection; the guests keep running."""
        ...

    def on_event(self, handler: EventHandler | None) -> None:
        """Deliver our servers' lifecycle events to handler, in order, one at a time. Events of
        other installations' domains are dropped."""
        ...

    def on_host_back(self, handler: HostHandler | None) -> None:
        """Call handler(host) when a host's connection opens again after a loss, in order with
        the events: what happened on the host meanwhile was never reported."""
        ...

    async def kvm_available(self, host: str) -> bool:
        """Whether guests on host can use KVM (else they run under emulation)."""
        ...

    async def domain_type(self, host: str) -> str:
        """The domain type a server on host gets: "kvm" when it has KVM, else "qemu"."""
        ...

    async def room_mb(self, host: str) -> int:
        """Memory (MB) host can still give to new guests. Counts every guest of the host, any
        installation's: they all hold memory."""
        ...

    async def place(
        self, mem_mb: int, avoid_hosts: Collection[str] = (), *, only: Collection[str] | None = None
    ) -> str:
        """The host a server of mem_mb should start on, preferring hosts not in avoid_hosts;
        with `only`, among those hosts alone (a region's hosts less the isolated ones: strict).
        FullError when every host answered and none has room; UnreachableError when none that
        answered has room but some did not answer."""
        ...

    async def ensure_network(self, host: str, name: str, bridge: str | None = None) -> None:
        """An isolated network of this name on host, created (with our ID) when missing; one that
        exists is used whoever made it, and never changed."""
        ...

    async def ensure_public_network(self, host: str, public: PublicNetwork) -> None:
        """The public network on host, created (with our ID) when missing. One that exists with
        other addressing is not changed under running guests: FailedError."""
        ...

    async def dhcp_hosts(self, host: str, name: str) -> dict[str, str] | None:
        """MAC → IP of network name's DHCP reservations; None when the network does not exist."""
        ...

    async def set_dhcp_host(self, host: str, name: str, mac: str, ip: str, ours: Collection[str]) -> None:
        """Reserve ip for mac in network name, replacing stale reservations of mac, or of ip for a
        MAC in ours (the caller's NICs). An ip reserved for a MAC not in ours is another
        installation's and is never taken: FailedError."""
        ...

    async def remove_dhcp_host(self, host: str, name: str, mac: str, ip: str) -> None:
        """Drop the reservation of ip for mac; a missing network or reservation is already done."""
        ...

    async def networks(self, host: str, prefix: str) -> list[str]:
        """Names of our networks on host starting with prefix (those with our ID only)."""
        ...

    async def remove_network(self, host: str, name: str) -> None:
        """Stop and forget network name; a missing one is already gone, one with another
        installation's ID is left alone."""
        ...

    async def start(self, host: str, xml: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Start a server from its domain XML (which must carry our ID) on host, with its drives'
        secrets (libvirt secret UUID → passphrase). FullError when host has no room for it;
        FailedError when it already runs there or the host refuses it (its secrets are removed
        again)."""
        ...

    async def remove_secrets(self, host: str, server: str) -> None:
        """Remove the secrets of one of our servers whose guest has stopped."""
        ...

    async def sweep_secrets(
        self, running: Collection[str], adopt: Collection[str] = (), hosts: Collection[str] | None = None
    ) -> None:
        """Remove our secrets (and those without an ID of servers in adopt) of every server not in
        running, on every host or those named."""
        ...

    async def stop(self, host: str, server: str) -> None:
        """Power cut; the run's secrets go with it. A server already off is not an error."""
        ...

    async def shutdown(self, host: str, server: str) -> None:
        """Ask the guest to power down; it may ignore it. Its power-off comes as a "stopped"
        event. A server already off is not an error."""
        ...

    async def reset(self, host: str, server: str) -> None:
        """Hard reset: the guest reboots at once; the run goes on. FailedError when not running."""
        ...

    async def set_cpu_live(self, host: str, server: str, cpu_mhz: int) -> None:
        """Give a running server cpu_mhz of CPU time at once (its vCPU count stays)."""
        ...

    async def set_vnc_password_live(self, host: str, server: str, password: str) -> None:
        """Change a running server's VNC password at once; FailedError when it has no display."""
        ...

    async def stats(self, host: str, server: str) -> DomainStats:
        """A running server's counters; FailedError when it is not running there."""
        ...

    async def samples(self, host: str, servers: Collection[str]) -> list[DomainSample]:
        """The counters of those of `servers` (ours, by UUID) that run on host, read for all of
        them in one bulk call; the others are left out. A domain of one of them that carries no
        installation ID is adopted, as running() does; one with another installation's ID is
        left out. Blocking work runs in a worker thread."""
        ...

    async def running(self, adopt: Collection[str] = (), hosts: Collection[str] | None = None) -> dict[str, str]:
        """Server UUID → host of our running servers (and those without an ID in adopt), on every
        host or those named. FailedError when a host cannot be asked: "not running" is never a
        guess."""
        ...


__all__ = ["DomainSample", "DomainStats", "DriveBytes", "DriveStats", "EventHandler", "HostHandler", "Hypervisor"]
