"""One libvirt host: its connection (opened lazily, reopened when lost) and its lifecycle events."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import libvirt

from elastic_api.config import HostConfig
from elastic_api.errors import UnreachableError

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
        self._event_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
        )
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

    def _lifecycle(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int,
                   _opaque: object) -> None:
        # A domain's name and UUID are cached in the object: no call back into libvirt here.
        self._sink(self.name, dom.name(), dom.UUIDString(), event, detail)
