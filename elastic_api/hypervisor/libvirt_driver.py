"""The hypervisor on libvirt: servers as transient domains on a set of hosts, with lifecycle events."""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

import libvirt
import libvirtaio

from elastic_api.config import Config, HostConfig
from elastic_api.errors import FailedError, FullError, InternalError, UnreachableError
from elastic_api.hypervisor import EventHandler, HostHandler
from elastic_api.hypervisor.domain import (
    CPU_PERIOD_US, cpu_quota, device_of_target, installation_of, secret_owner, secret_xml, server_of,
)
from elastic_api.hypervisor.events import drain, ensure_event_loop
from elastic_api.hypervisor.hosts import Host
from elastic_api.model.ids import is_id
from elastic_api.hypervisor.network import (
    PublicNetwork, dhcp_host_xml, dhcp_hosts, isolated_network_xml, public_network_differs, public_network_xml,
)
from elastic_api.hypervisor.placement import HostRoom, choose_host

T = TypeVar("T")

# What a libvirt error means to a client, by error code; the raw libvirt text goes to the log only
# (it names host paths and internals).
_UNREACHABLE = frozenset({
    libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED, libvirt.VIR_ERR_AUTH_UNAVAILABLE, libvirt.VIR_ERR_INVALID_CONN,
})
_REASONS = {
    libvirt.VIR_ERR_NO_DOMAIN: "the server is not running there",
    libvirt.VIR_ERR_OPERATION_INVALID: "the server is not in a state that allows it",
    libvirt.VIR_ERR_NO_NETWORK: "a network the server uses does not exist on that host",
    libvirt.VIR_ERR_NETWORK_EXIST: "the network already exists",
    libvirt.VIR_ERR_NO_SUPPORT: "that host does not support it",
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED: "that host does not support it",
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED: "that host does not support it",
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED: "that host cannot run the server's configuration",
    libvirt.VIR_ERR_XML_ERROR: "that host cannot run the server's configuration",
    libvirt.VIR_ERR_XML_DETAIL: "that host cannot run the server's configuration",
    libvirt.VIR_ERR_OPERATION_TIMEOUT: "the hypervisor timed out",
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE: "the hypervisor timed out",
    libvirt.VIR_ERR_RESOURCE_BUSY: "the hypervisor is busy with the server",
    libvirt.VIR_ERR_SYSTEM_ERROR: "the host could not open a file or device the server uses",
}
_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "paused",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    # A guest's power-off (SHUTDOWN) and crash (CRASHED) events are each followed by STOPPED, as
    # the domain XML destroys the domain on both; so one run ends in exactly one "stopped".
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
}
# libvirt frees closed handles and timers through the event loop; this long is plenty.
DRAIN_TIMEOUT_S = 1.0


def _alive(conn: libvirt.virConnect) -> bool:
    """Whether the connection still works (a local check, no call to the host)."""
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


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


def _define_secrets(conn: libvirt.virConnect, server: str, installation: str, secrets: Mapping[str, bytes]) -> None:
    for uuid, value in secrets.items():
        conn.secretDefineXML(secret_xml(uuid, server, installation), 0).setValue(value, 0)


def _remove_secrets(conn: libvirt.virConnect, gone: Callable[[str, str | None], bool]) -> int:
    """Undefine the secrets (described by their server's domain name and installation, see
    domain.secret_owner) for which gone(server, installation) holds; installation is None for a
    secret from before installation IDs."""
    try:
        secrets = conn.listAllSecrets(0)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return 0  # a driver without secrets (test:///) holds none of ours
        raise
    removed = 0
    for secret in secrets:
        try:
            server, installation = secret_owner(ET.fromstring(secret.XMLDesc(0)).findtext("description") or "")
            if server is not None and gone(server, installation):
                secret.undefine()
                removed += 1
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                raise  # one already removed by someone else is fine
    return removed


def _memory_mb(root: ET.Element) -> int:
    memory = root.find("memory")
    if memory is None or not (memory.text or "").strip().isdigit():
        raise FailedError("the domain XML has no memory size")
    scale = {"b": 1 / 2**20, "bytes": 1 / 2**20, "kib": 1 / 1024, "k": 1 / 1024, "mib": 1, "m": 1,
             "gib": 1024, "g": 1024}.get(memory.get("unit", "KiB").lower())
    if scale is None:
        raise FailedError("the domain XML's memory unit is not understood")
    return int(int((memory.text or "0").strip()) * scale)


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

    def __init__(self, hosts: Sequence[HostConfig], *, installation: str, host_core_mhz: int = 2000,
                 reconnect_interval: float = 5.0) -> None:
        if not hosts:
            raise FailedError("no hosts configured")
        if not is_id(installation):
            raise InternalError(f"the hypervisor needs the installation's ID, not {installation!r}")
        self.installation = installation
        self._hosts = {config.name: Host(config, self._on_lifecycle, self._on_reconnect) for config in hosts}
        self._host_core_mhz = host_core_mhz
        self._reconnect_interval = reconnect_interval
        self._handler: EventHandler | None = None
        self._host_handler: HostHandler | None = None
        # Servers whose domains are known to be this installation's (started here, or found with
        # our ID or adopted by running()): a "stopped" event can no longer be checked against the
        # domain, which is gone by then.
        self._ours: set[str] = set()
        # (host, server, event); server "" with event "reconnected" for a host whose connection came back.
        self._events: asyncio.Queue[tuple[str, str, str]] | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kvm: dict[str, bool] = {}
        self._impl: libvirtaio.virEventAsyncIOImpl | None = None
        self._log = logging.getLogger(__name__)

    @classmethod
    def from_config(cls, config: Config, installation: str) -> LibvirtHypervisor:
        return cls(config.hosts, installation=installation, host_core_mhz=config.host_core_mhz,
                   reconnect_interval=config.host_reconnect_interval)

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(self._hosts)

    # --- connections and events ------------------------------------------------------------

    async def open(self) -> None:
        """Hook libvirt's events into the running loop and connect to every host. A host that
        cannot be reached is logged and retried on its next use, so one dead host never keeps
        the API from starting."""
        self._impl = ensure_event_loop()
        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._deliverer = asyncio.create_task(self._deliver(), name="hypervisor-events")
        results = await asyncio.gather(*(host.connection() for host in self._hosts.values()),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, FailedError):
                raise result
        self._watcher = asyncio.create_task(self._watch(), name="hypervisor-reconnect")

    async def close(self) -> None:
        for task in (self._watcher, self._deliverer):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._watcher = self._deliverer = None
        for host in self._hosts.values():
            await host.close()
        if self._impl is not None:
            await drain(self._impl, DRAIN_TIMEOUT_S)
        self._loop = None

    def on_event(self, handler: EventHandler | None) -> None:
        """Deliver each of our domains' lifecycle events as `await handler(server, event)`, in
        order, one at a time; event is "started", "stopped", "paused" or "resumed". Events of
        domains another installation runs are dropped."""
        self._handler = handler

    def on_host_back(self, handler: HostHandler | None) -> None:
        """`await handler(host)` when a host's connection opens again after it was lost (or
        could not be opened at start-up), in order with the domains' events: what happened on
        the host meanwhile was never reported, so the caller reconciles it."""
        self._host_handler = handler

    def _on_lifecycle(self, host: str, name: str, uuid: str, event: int, detail: int) -> None:
        server = server_of(name)
        word = _EVENTS.get(event)
        if server is None or server != uuid or word is None or self._loop is None or self._events is None:
            return
        self._log.debug("host %s: server %s %s (libvirt detail %d)", host, server, word, detail)
        # libvirt dispatches events on the loop's thread; call_soon_threadsafe keeps this safe anyway.
        self._loop.call_soon_threadsafe(self._events.put_nowait, (host, server, word))

    def _on_reconnect(self, host: str) -> None:
        if self._loop is not None and self._events is not None:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (host, "", "reconnected"))

    async def _watch(self) -> None:
        """Reopen lost connections without waiting for a client to need them: a guest that
        stopped while its host was out of reach is only noticed once the host is back. A
        connection libvirt has given up on (keepalives unanswered, socket closed) without its
        close callback having come yet counts as lost too."""
        while True:
            await asyncio.sleep(self._reconnect_interval)
            for host in self._hosts.values():
                if host.connected and not await asyncio.to_thread(host.alive):
                    host.mark_lost()
                if not host.connected:
                    try:
                        await host.connection()
                    except FailedError:
                        pass  # logged by the host; tried again next round

    async def _ours_now(self, host: str, server: str) -> bool:
        """Whether the running domain of server on host carries our installation ID (for a
        "started" event of a domain we did not start: one adopted, or another installation's)."""
        def read(conn: libvirt.virConnect) -> str | None:
            try:
                return installation_of(conn.lookupByUUIDString(server).XMLDesc(0))
            except libvirt.libvirtError:
                return None
        try:
            return await self._call(host, "look up server", read) == self.installation
        except FailedError:
            return False

    async def _deliver(self) -> None:
        assert self._events is not None
        # The last event delivered per running server: QEMU starts paused and libvirt resumes it
        # before reporting the start, so a "resumed" only counts after a "paused".
        last: dict[str, str] = {}
        while True:
            host, server, word = await self._events.get()
            if word == "reconnected":
                await self._host_back(host)
                continue
            if server not in self._ours:
                if word == "started" and await self._ours_now(host, server):
                    self._ours.add(server)
                else:
                    self._log.debug("host %s: server %s %s: not this installation's domain", host, server, word)
                    continue
            if word == "resumed" and last.get(server) != "paused":
                continue
            if word == "stopped":
                last.pop(server, None)
                if await self._active(host, server):
                    # A stop from an earlier run, arriving after the server was started again.
                    continue
            else:
                last[server] = word
            handler = self._handler
            if handler is None:
                continue
            try:
                await handler(server, word)
            except Exception:
                self._log.exception("event handler failed for server %s %s", server, word)
            if word == "stopped":
                self._ours.discard(server)  # a new run is ours again from its start()

    async def _host_back(self, host: str) -> None:
        handler = self._host_handler
        self._log.info("host %s: connection is back", host)
        if handler is None:
            return
        try:
            await handler(host)
        except Exception:
            self._log.exception("reconciling host %s after its connection came back failed", host)

    async def _active(self, host: str, server: str) -> bool:
        def active(conn: libvirt.virConnect) -> bool:
            try:
                return bool(conn.lookupByUUIDString(server).isActive())
            except libvirt.libvirtError:
                return False
        try:
            return await self._call(host, "look up server", active)
        except FailedError:
            return False

    # --- calls ------------------------------------------------------------------------------

    def _host(self, name: str) -> Host:
        host = self._hosts.get(name)
        if host is None:
            raise FailedError(f"no host named {name!r}")
        return host

    async def _call(self, host_name: str, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """fn(connection) in a worker thread; a libvirt error becomes FailedError saying what failed."""
        host = self._host(host_name)
        conn = await host.connection()
        try:
            return await asyncio.to_thread(fn, conn)
        except libvirt.libvirtError as e:
            raise self._failed(host, what, e, alive=await asyncio.to_thread(_alive, conn)) from None

    def _failed(self, host: Host, what: str, error: libvirt.libvirtError, *, alive: bool) -> FailedError:
        code = error.get_error_code()
        self._log.warning("host %s: could not %s: %s (libvirt error %s)", host.name, what, error, code)
        if code in _UNREACHABLE or not alive:
            host.mark_lost()
            return FailedError(f"could not {what}: host {host.name} is unreachable")
        reason = _REASONS.get(code, "the hypervisor refused it")
        return FailedError(f"could not {what} on host {host.name}: {reason}")

    # --- hosts ------------------------------------------------------------------------------

    async def kvm_available(self, host: str) -> bool:
        """Whether guests on this host can use KVM (else they run under TCG emulation)."""
        if host not in self._kvm:
            def probe(conn: libvirt.virConnect) -> bool:
                try:
                    conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
                    return True
                except libvirt.libvirtError:
                    return False  # no /dev/kvm for QEMU, or a driver (test:///) without KVM
            self._kvm[host] = await self._call(host, "probe KVM", probe)
        return self._kvm[host]

    async def domain_type(self, host: str) -> str:
        """The domain type for DomainSpec: "kvm" when the host has it, else "qemu" (TCG)."""
        return "kvm" if await self.kvm_available(host) else "qemu"

    async def _room_mb(self, host: Host) -> int:
        # Reservations are copied before the list is taken: a start drops its reservation only
        # after its domain exists, so each start is counted exactly once, as a listed domain or
        # as a reservation.
        reserved = dict(host.reserved)

        def committed(conn: libvirt.virConnect) -> tuple[int, int]:
            capacity = host.mem_mb or int(conn.getInfo()[1])
            used_kib = 0
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                server = server_of(dom.name())
                if server is not None:
                    reserved.pop(server, None)
                    try:
                        used_kib += int(dom.info()[1])
                    except libvirt.libvirtError:
                        pass  # gone since the list was taken
            return capacity, used_kib // 1024
        capacity, used = await self._call(host.name, "measure memory", committed)
        return capacity - used - sum(reserved.values())

    async def room_mb(self, host: str) -> int:
        """Memory (MB) the host can still give: its configured mem_mb, or all of its memory when
        that is 0, less what our running domains and starts under way hold."""
        return await self._room_mb(self._host(host))

    async def place(self, mem_mb: int, avoid_hosts: Collection[str] = ()) -> str:
        """The host a server of mem_mb should start on (see placement.choose_host); unreachable
        hosts are skipped. FullError when every host answered and none has room;
        UnreachableError when no host that answered has room but some did not answer (one of
        them may have room once it is back: the client should ask again, not give up)."""
        hosts = list(self._hosts.values())
        rooms = await asyncio.gather(*(self._room_mb(host) for host in hosts), return_exceptions=True)
        usable, unreachable = [], []
        for host, room in zip(hosts, rooms, strict=True):
            if isinstance(room, FailedError):
                unreachable.append(host.name)
                continue
            if isinstance(room, BaseException):
                raise room
            usable.append(HostRoom(host.name, room))
        try:
            return choose_host(usable, mem_mb, avoid_hosts)
        except FullError:
            if not unreachable:
                raise
            raise UnreachableError(f"no reachable host has room for a server of {mem_mb} MB; unreachable: "
                                   f"{' '.join(unreachable)}") from None

    async def ensure_network(self, host: str, name: str, bridge: str | None = None) -> None:
        """An isolated libvirt network (a bridge with no forwarding, no host address, no DHCP) by
        this name, created transient (with our installation ID) when missing: NICs on no other
        network, and each VLAN (whose bridge name the caller derives). One that exists is used
        whoever made it: the default isolated network is shared by the installations on a host."""
        def ensure(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name) or _create_network(
                conn, name, isolated_network_xml(name, self.installation, bridge))
            if not network.isActive():
                network.create()
        await self._call(host, f"set up network {name}", ensure)

    async def ensure_public_network(self, host: str, public: PublicNetwork) -> None:
        """The public network on host (see network.public_network_xml), created transient (with
        our installation ID) when missing. One that exists is shared, whichever installation made
        it, and never removed by us; one with other addressing is not ours to change under running
        guests: FailedError, and the operator removes it or fixes the pool."""
        def ensure(conn: libvirt.virConnect) -> str | None:
            network = _lookup_network(conn, public.name) or _create_network(
                conn, public.name, public_network_xml(public, self.installation))
            if not network.isActive():
                network.create()
            return public_network_differs(network.XMLDesc(0), public)
        differs = await self._call(host, f"set up network {public.name}", ensure)
        if differs is not None:
            self._log.error("host %s: network %s does not match the ip_pool config: %s", host, public.name, differs)
            raise FailedError(f"could not set up the public network on host {host}: it exists with other addressing")

    async def dhcp_hosts(self, host: str, name: str) -> dict[str, str] | None:
        """MAC → IP of the DHCP reservations in network `name`, or None when it does not exist."""
        def read(conn: libvirt.virConnect) -> dict[str, str] | None:
            network = _lookup_network(conn, name)
            return None if network is None else dhcp_hosts(network.XMLDesc(0))
        return await self._call(host, f"read network {name}", read)

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
        holder = await self._call(host, f"reserve {ip} in network {name}", update)
        if holder is not None:
            self._log.error("host %s: %s in network %s is reserved for %s, a NIC this installation does not know",
                            host, ip, name, holder)
            raise FailedError(f"could not reserve {ip} on host {host}: another installation sharing the "
                              "network holds it")

    async def remove_dhcp_host(self, host: str, name: str, mac: str, ip: str) -> None:
        """Drop the reservation of ip for mac; a missing network or reservation is already done."""
        def update(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name)
            if network is not None and dhcp_hosts(network.XMLDesc(0)).get(mac) == ip:
                _update_dhcp_host(network, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, mac, ip)
        await self._call(host, f"release {ip} in network {name}", update)

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
                if owner == self.installation:
                    found.append(network.name())
                else:
                    self._log.debug("host %s: network %s is not this installation's", host, network.name())
            return sorted(found)
        return await self._call(host, "list networks", names)

    async def remove_network(self, host: str, name: str) -> None:
        """Stop network `name` and forget it; one that does not exist is already gone. One that
        carries another installation's ID is left alone (logged): only its maker removes it. One
        without an ID (made before installation IDs) is the caller's by its name (a VLAN's UUID)."""
        def remove(conn: libvirt.virConnect) -> None:
            network = _lookup_network(conn, name)
            if network is None:
                return
            owner = installation_of(network.XMLDesc(0))
            if owner is not None and owner != self.installation:
                self._log.warning("host %s: network %s belongs to installation %s; not removed", host, name, owner)
                return
            persistent = network.isPersistent()
            if network.isActive():
                network.destroy()
            if persistent:
                network.undefine()
        await self._call(host, f"remove network {name}", remove)

    # --- servers ----------------------------------------------------------------------------

    async def start(self, host: str, xml: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Start a transient domain from domain_xml() on host. Memory is checked and reserved
        under the host's lock, so concurrent starts cannot together overfill it (FullError).
        `secrets` (libvirt secret UUID → LUKS passphrase, for the domain's encrypted disks) are
        defined first and removed again if the domain does not start."""
        root = ET.fromstring(xml)
        server = root.findtext("uuid") or ""
        if installation_of(root) != self.installation:
            raise InternalError(f"server {server}: the domain XML does not carry this installation's ID")
        mem_mb = _memory_mb(root)
        target = self._host(host)
        async with target.reserve_lock:
            room = await self._room_mb(target)
            if mem_mb > room:
                raise FullError(f"host {host} has no room for a server of {mem_mb} MB")
            target.reserved[server] = mem_mb

        def create(conn: libvirt.virConnect) -> None:
            try:
                if conn.lookupByUUIDString(server).isActive():
                    raise FailedError(f"server {server} is already running on host {host}")
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            try:
                _define_secrets(conn, server, self.installation, secrets or {})
                # No AUTODESTROY: guests keep running while the API restarts; running() finds them.
                conn.createXML(xml, 0)
            except BaseException:
                if secrets:
                    _remove_secrets(conn, lambda owner, installation: owner == server
                                    and installation == self.installation)
                raise
        self._ours.add(server)  # before the start, so that its "started" event is taken as ours
        try:
            await self._call(host, f"start server {server}", create)
        finally:
            target.reserved.pop(server, None)

    async def _domain_call(self, host: str, server: str, what: str, fn: Callable[[libvirt.virDomain], T],
                           *, missing_ok: bool = False) -> T | None:
        def call(conn: libvirt.virConnect) -> T | None:
            try:
                dom = conn.lookupByUUIDString(server)
                return fn(dom)
            except libvirt.libvirtError as e:
                if missing_ok and e.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN,
                                                         libvirt.VIR_ERR_OPERATION_INVALID):
                    return None
                raise
        return await self._call(host, f"{what} server {server}", call)

    async def stop(self, host: str, server: str) -> None:
        """Power cut, and the run's secrets go with it. A server that is already off is not an
        error: the result is the same."""
        await self._domain_call(host, server, "stop", lambda dom: dom.destroy(), missing_ok=True)
        await self.remove_secrets(host, server)

    async def remove_secrets(self, host: str, server: str) -> None:
        """Remove the secrets of one of our servers that is not running (its guest has stopped):
        those with our ID, and those from before installation IDs (the server is ours)."""
        await self._call(host, f"remove the secrets of server {server}",
                         lambda conn: _remove_secrets(conn, lambda owner, installation: owner == server
                                                      and installation in (None, self.installation)))

    async def sweep_secrets(self, running: Collection[str], adopt: Collection[str] = (),
                            hosts: Collection[str] | None = None) -> None:
        """Remove our secrets of every server not in `running`, on every host (or those named):
        guests that stopped while the API was down or the host out of reach. Ours are those with
        our ID, and those without one whose server is in `adopt`; others are never touched."""
        keep, adopted = set(running), set(adopt)

        def gone(owner: str, installation: str | None) -> bool:
            mine = installation == self.installation or (installation is None and owner in adopted)
            return mine and owner not in keep
        for name in self._hosts if hosts is None else hosts:
            removed = await self._call(name, "remove stale secrets", lambda conn: _remove_secrets(conn, gone))
            if removed:
                self._log.info("host %s: removed %d secrets of servers no longer running", name, removed)

    async def shutdown(self, host: str, server: str) -> None:
        """Ask the guest to power down (ACPI power button: the domains have no guest agent, so
        libvirt's default method is ACPI). The guest may ignore it; its power-off arrives as a
        "stopped" event. Nothing to do for a server that is already off."""
        await self._domain_call(host, server, "shut down", lambda dom: dom.shutdown(), missing_ok=True)

    async def reset(self, host: str, server: str) -> None:
        """Hard reset: the guest reboots at once, without shutting down; the run goes on."""
        await self._domain_call(host, server, "reset", lambda dom: dom.reset(0))

    async def set_cpu_live(self, host: str, server: str, cpu_mhz: int) -> None:
        """Apply a new `cpu` to a running server: a new CFS quota over its current vCPUs (their
        count cannot change until the next start)."""
        def apply(dom: libvirt.virDomain) -> None:
            vcpus = int(dom.info()[3])
            dom.setSchedulerParametersFlags(
                {"vcpu_period": CPU_PERIOD_US, "vcpu_quota": cpu_quota(cpu_mhz, self._host_core_mhz, vcpus)},
                libvirt.VIR_DOMAIN_AFFECT_LIVE,
            )
        await self._domain_call(host, server, "change the CPU of", apply)

    async def set_vnc_password_live(self, host: str, server: str, password: str) -> None:
        """Apply a new `vnc:password` to a running server's VNC display."""
        def apply(dom: libvirt.virDomain) -> None:
            graphics = ET.fromstring(dom.XMLDesc(0)).find("devices/graphics[@type='vnc']")
            if graphics is None:
                raise FailedError(f"server {server} has no VNC display")
            graphics.set("passwd", password)
            dom.updateDeviceFlags(ET.tostring(graphics, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        await self._domain_call(host, server, "change the VNC password of", apply)

    async def stats(self, host: str, server: str) -> dict[str, int]:
        """A running server's counters in the protocol's words: `rx`, `tx`, `rx:packets`,
        `tx:packets` (all NICs, as the guest sees them), `DEVICE:read:bytes`, `:read:requests`,
        `:write:bytes`, `:write:requests` per drive, `smp:cores`, `smp:sockets`, and `vnc:port`
        when it has a VNC display."""
        def read(dom: libvirt.virDomain) -> dict[str, int]:
            root = ET.fromstring(dom.XMLDesc(0))
            info = {"rx": 0, "tx": 0, "rx:packets": 0, "tx:packets": 0}
            for target in root.iterfind("devices/interface/target"):
                rx_bytes, rx_packets, _, _, tx_bytes, tx_packets, _, _ = dom.interfaceStats(target.get("dev", ""))
                info["rx"] += rx_bytes
                info["tx"] += tx_bytes
                info["rx:packets"] += rx_packets
                info["tx:packets"] += tx_packets
            for target in root.iterfind("devices/disk/target"):
                dev = target.get("dev", "")
                device = device_of_target(dev)
                if device is None:
                    continue
                read_requests, read_bytes, write_requests, write_bytes, _ = dom.blockStats(dev)
                info[f"{device}:read:bytes"] = read_bytes
                info[f"{device}:read:requests"] = read_requests
                info[f"{device}:write:bytes"] = write_bytes
                info[f"{device}:write:requests"] = write_requests
            vcpus = int(dom.info()[3])
            topology = root.find("cpu/topology")
            sockets, cores = vcpus, 1
            if topology is not None:
                sockets = int(topology.get("sockets", vcpus))
                cores = int(topology.get("cores", 1))
            info["smp:sockets"], info["smp:cores"] = sockets, cores
            graphics = root.find("devices/graphics[@type='vnc']")
            if graphics is not None and int(graphics.get("port", "-1")) > 0:
                info["vnc:port"] = int(graphics.get("port", "0"))
            return info
        result = await self._domain_call(host, server, "read the counters of", read)
        assert result is not None
        return result

    async def running(self, adopt: Collection[str] = (), hosts: Collection[str] | None = None) -> dict[str, str]:
        """Server UUID → host for every one of our domains running anywhere (or on the hosts
        named), to reconcile state. Ours: carrying our installation ID, or carrying none (made
        before installation IDs) with a server in `adopt` or adopted before. A domain named
        `elastic-*` with another installation's ID, or none and not adopted, is not ours: logged
        at debug and left alone. FailedError if a host cannot be asked: "not running" must never
        be a guess."""
        adopted = set(adopt) | self._ours

        def ours(conn: libvirt.virConnect) -> list[str]:
            found = []
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                server = server_of(dom.name())
                if server is None:
                    continue
                try:
                    owner = installation_of(dom.XMLDesc(0))
                except libvirt.libvirtError:
                    continue  # gone since the list was taken
                if owner == self.installation or (owner is None and server in adopted):
                    found.append(server)
                else:
                    self._log.debug("domain %s is not this installation's (installation %s)", dom.name(), owner)
            return found
        found: dict[str, str] = {}
        for name in self._hosts if hosts is None else hosts:
            for server in await self._call(name, "list servers", ours):
                found[server] = name
        self._ours.update(found)
        return found


__all__ = ["LibvirtHypervisor"]
