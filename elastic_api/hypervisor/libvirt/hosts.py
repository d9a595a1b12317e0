"""The libvirt hosts: each one's connection (opened lazily, reopened when lost, watched in the
background) and lifecycle events, calls made on them with libvirt's errors turned into neutral
ones, and the memory room placement chooses by."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar
from xml.etree import ElementTree

import libvirt

from elastic_api.config import HostConfig
from elastic_api.errors import FailedError, FullError, UnreachableError
from elastic_api.hypervisor.domain import server_of
from elastic_api.hypervisor.placement import HostRoom, choose_host

T = TypeVar("T")

# (host name, domain name, server UUID, libvirt event, libvirt detail); called on the loop thread.
LifecycleSink = Callable[[str, str, str, int, int], None]
# (host name): its connection opened again after it was lost or could not be opened.
ReconnectSink = Callable[[str], None]

# Keepalive on remote connections: a probe every 5 s, given up after 3 unanswered, so a dead
# host is noticed in about 20 s instead of at the next TCP timeout.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


class Host:
    """A configured host and its libvirt connection. Every method that blocks runs in a worker
    thread; the connection is opened on first use and reopened after libvirt reports it lost."""

    def __init__(self, config: HostConfig, sink: LifecycleSink, reconnected: ReconnectSink) -> None:
        self.name = config.name
        self.uri = config.uri
        self.mem_mb = config.mem_mb
        # Memory (MB) promised to guests whose start is under way, by server UUID; a guest already in
        # libvirt's list of domains is counted there instead, never twice.
        self.reserved: dict[str, int] = {}
        self.reserve_lock = asyncio.Lock()
        self._sink = sink
        self._reconnected = reconnected
        self._conn: libvirt.virConnect | None = None
        self._lost = False
        # Events may have been missed since the last time the host was known: set when its
        # connection is lost or cannot be opened, cleared (and reported) when it opens again.
        self._missed = False
        self._event_id: int | None = None
        self._open_lock = asyncio.Lock()
        self._log = logging.getLogger(__name__)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._lost

    async def connection(self) -> libvirt.virConnect:
        """The open connection, (re)opening it when needed; UnreachableError when the host cannot be
        reached (nothing was sent to it). A reopening after a loss is reported to `reconnected`."""
        if self._conn is not None and not self._lost:
            return self._conn
        async with self._open_lock:
            if self._conn is not None and not self._lost:
                return self._conn
            if self._conn is not None:
                old, self._conn = self._conn, None
                await asyncio.to_thread(self._close, old)
            try:
                self._conn = await asyncio.to_thread(self._open)
            except libvirt.libvirtError as e:
                self._missed = True
                self._log.warning("host %s (%s): cannot connect: %s", self.name, self.uri, e)
                raise UnreachableError(f"host {self.name} is unreachable") from None
            self._lost = False
            if self._missed:
                self._missed = False
                self._reconnected(self.name)
            return self._conn

    def alive(self) -> bool:
        """Whether the open connection still works: a local check, no call to the host (blocks
        on the connection's lock, so call it from a worker thread)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def mark_lost(self) -> None:
        """The connection failed under a call: reopen it next time."""
        self._lost = self._missed = True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._close, conn)

    def _open(self) -> libvirt.virConnect:
        conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        except libvirt.libvirtError:
            pass  # local drivers (test:///) have no keepalive; they cannot be lost either
        try:
            conn.registerCloseCallback(self._closed, None)
        except libvirt.libvirtError:
            pass  # drivers without a close callback are local and never close underneath us
        self._event_id = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
        self._log.info("host %s: connected to %s", self.name, self.uri)
        return conn

    def _close(self, conn: libvirt.virConnect) -> None:
        # Each step may fail on a connection that is already gone; the rest must still happen.
        if self._event_id is not None:
            try:
                conn.domainEventDeregisterAny(self._event_id)
            except libvirt.libvirtError:
                pass
            self._event_id = None
        try:
            conn.unregisterCloseCallback()
        except libvirt.libvirtError:
            pass
        try:
            conn.close()
        except libvirt.libvirtError:
            pass

    def _closed(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        self._log.warning("host %s: connection lost (reason %d); reconnecting", self.name, reason)
        self._lost = self._missed = True

    def _lifecycle(
        self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int, _opaque: object
    ) -> None:
        # A domain's name and UUID are cached in the object: no call back into libvirt here.
        self._sink(self.name, dom.name(), dom.UUIDString(), event, detail)


# What a libvirt error means to a client, by error code; the raw libvirt text goes to the log only
# (it names host paths and internals).
_UNREACHABLE = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_AUTH_FAILED,
        libvirt.VIR_ERR_AUTH_CANCELLED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE,
        libvirt.VIR_ERR_INVALID_CONN,
    }
)
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


def _alive(conn: libvirt.virConnect) -> bool:
    """Whether the connection still works (a local check, no call to the host)."""
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


class Hosts:
    """The configured hosts. Their lifecycle events and reconnections go to the sinks given to
    subscribe() (the event delivery); every call on a host runs in a worker thread."""

    def __init__(self, configs: Sequence[HostConfig], *, reconnect_interval: float = 5.0) -> None:
        if not configs:
            raise FailedError("no hosts configured")
        self._hosts = {config.name: Host(config, self._lifecycle, self._reconnected) for config in configs}
        self._reconnect_interval = reconnect_interval
        self._lifecycle_sink: LifecycleSink | None = None
        self._reconnect_sink: ReconnectSink | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._kvm: dict[str, bool] = {}
        self._log = logging.getLogger(__name__)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._hosts)

    def connected(self) -> dict[str, bool]:
        """Each host's connection state as last known (no call to the host)."""
        return {name: host.connected for name, host in self._hosts.items()}

    def subscribe(self, lifecycle: LifecycleSink, reconnected: ReconnectSink) -> None:
        self._lifecycle_sink, self._reconnect_sink = lifecycle, reconnected

    def _lifecycle(self, host: str, name: str, uuid: str, event: int, detail: int) -> None:
        if self._lifecycle_sink is not None:
            self._lifecycle_sink(host, name, uuid, event, detail)

    def _reconnected(self, host: str) -> None:
        if self._reconnect_sink is not None:
            self._reconnect_sink(host)

    # --- connections --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to every host. A host that cannot be reached is logged and retried on its next
        use and by the watcher, so one dead host never keeps the API from starting."""
        results = await asyncio.gather(*(host.connection() for host in self._hosts.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, FailedError):
                raise result
        await self._warn_if_shared()
        self._watcher = asyncio.create_task(self._watch(), name="hypervisor-reconnect")

    async def _warn_if_shared(self) -> None:
        """Two configured hosts that are one machine (one libvirtd reached by two URIs) each see
        the other's guests, and a reconcile of one takes those for strays and powers them off:
        said loudly at start-up (by the host UUID libvirt reports), as nothing else shows it."""

        def host_uuid(conn: libvirt.virConnect) -> str:
            return ElementTree.fromstring(conn.getCapabilities()).findtext("host/uuid") or ""

        seen: dict[str, str] = {}
        for host in self._hosts.values():
            if not host.connected:
                continue
            try:
                uuid = await self.call(host.name, "read the host's capabilities", host_uuid)
            except FailedError:
                continue
            if uuid and uuid in seen:
                self._log.warning(
                    "hosts %s and %s are one machine (host UUID %s): each sees the other's guests, "
                    "and reconciling one would power off guests started on the other; configure "
                    "each host once",
                    seen[uuid],
                    host.name,
                    uuid,
                )
            seen.setdefault(uuid, host.name)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
            self._watcher = None
        for host in self._hosts.values():
            await host.close()

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

    # --- calls --------------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        host = self._hosts.get(name)
        if host is None:
            raise FailedError(f"no host named {name!r}")
        return host

    async def call(self, host_name: str, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """fn(connection) in a worker thread; a libvirt error becomes FailedError saying what failed."""
        host = self.host(host_name)
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

    # --- what a host offers -------------------------------------------------------------------

    async def kvm_available(self, host: str) -> bool:
        """Whether guests on this host can use KVM (else they run under TCG emulation)."""
        if host not in self._kvm:

            def probe(conn: libvirt.virConnect) -> bool:
                try:
                    conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
                    return True
                except libvirt.libvirtError:
                    return False  # no /dev/kvm for QEMU, or a driver (test:///) without KVM

            self._kvm[host] = await self.call(host, "probe KVM", probe)
        return self._kvm[host]

    async def domain_type(self, host: str) -> str:
        """The domain type for DomainSpec: "kvm" when the host has it, else "qemu" (TCG)."""
        return "kvm" if await self.kvm_available(host) else "qemu"

    async def room(self, host: Host) -> int:
        """Memory (MB) the host can still give: its configured mem_mb, or all of its memory when
        that is 0, less what the running `elastic-` domains (any installation's: they all hold
        memory) and our starts under way hold."""
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

        capacity, used = await self.call(host.name, "measure memory", committed)
        return capacity - used - sum(reserved.values())

    async def room_mb(self, host: str) -> int:
        return await self.room(self.host(host))

    async def place(
        self, mem_mb: int, avoid_hosts: Collection[str] = (), *, only: Collection[str] | None = None
    ) -> str:
        """The host a server of mem_mb should start on (see placement.choose_host); unreachable
        hosts are skipped. FullError when every host answered and none has room;
        UnreachableError when no host that answered has room but some did not answer (one of
        them may have room once it is back: the client should ask again, not give up)."""
        hosts = [h for h in self._hosts.values() if only is None or h.name in only]
        if not hosts:
            raise FullError(f"no allowed host for a server of {mem_mb} MB")
        rooms = await asyncio.gather(*(self.room(host) for host in hosts), return_exceptions=True)
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
            raise UnreachableError(
                f"no reachable host has room for a server of {mem_mb} MB; unreachable: {' '.join(unreachable)}"
            ) from None
