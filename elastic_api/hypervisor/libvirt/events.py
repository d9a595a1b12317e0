"""Delivering our domains' lifecycle events, and hosts coming back, to the service: in order, one
at a time, each domain's event judged against this installation's ID first."""

from __future__ import annotations

import asyncio
import logging

import libvirt

from elastic_api.errors import FailedError
from elastic_api.hypervisor.base import EventHandler, HostHandler
from elastic_api.hypervisor.domain import installation_of, server_of
from elastic_api.hypervisor.libvirt.hosts import Hosts

_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "paused",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    # A guest's power-off (SHUTDOWN) and crash (CRASHED) events are each followed by STOPPED, as
    # the domain XML destroys the domain on both; so one run ends in exactly one "stopped".
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
}


class Events:
    """Takes the hosts' raw lifecycle events and reconnections (on the loop thread) and delivers
    them from one task. `ours` is shared with the domains: the servers whose domains are known to
    be this installation's (started here, or found with our ID or adopted by running()); a
    "stopped" event can no longer be checked against the domain, which is gone by then."""

    def __init__(self, hosts: Hosts, installation: str, ours: set[str]) -> None:
        self._hosts = hosts
        self._installation = installation
        self._ours = ours
        self._handler: EventHandler | None = None
        self._host_handler: HostHandler | None = None
        # (host, server, event); server "" with event "reconnected" for a host whose connection came back.
        self._queue: asyncio.Queue[tuple[str, str, str]] | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = logging.getLogger(__name__)
        hosts.subscribe(self.on_lifecycle, self.on_reconnect)

    def start(self) -> None:
        """Start delivering, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._deliverer = asyncio.create_task(self._deliver(), name="hypervisor-events")

    async def close(self) -> None:
        if self._deliverer is not None:
            self._deliverer.cancel()
            try:
                await self._deliverer
            except asyncio.CancelledError:
                pass
            self._deliverer = None
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

    def on_lifecycle(self, host: str, name: str, uuid: str, event: int, detail: int) -> None:
        """A host's raw lifecycle event (libvirt's event and detail codes)."""
        server = server_of(name)
        word = _EVENTS.get(event)
        if server is None or server != uuid or word is None or self._loop is None or self._queue is None:
            return
        self._log.debug("host %s: server %s %s (libvirt detail %d)", host, server, word, detail)
        # libvirt dispatches events on the loop's thread; call_soon_threadsafe keeps this safe anyway.
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (host, server, word))

    def on_reconnect(self, host: str) -> None:
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (host, "", "reconnected"))

    async def _ours_now(self, host: str, server: str) -> bool:
        """Whether the running domain of server on host carries our installation ID (for a
        "started" event of a domain we did not start: one adopted, or another installation's)."""

        def read(conn: libvirt.virConnect) -> str | None:
            try:
                return installation_of(conn.lookupByUUIDString(server).XMLDesc(0))
            except libvirt.libvirtError:
                return None

        try:
            return await self._hosts.call(host, "look up server", read) == self._installation
        except FailedError:
            return False

    async def _active(self, host: str, server: str) -> bool:
        def active(conn: libvirt.virConnect) -> bool:
            try:
                return bool(conn.lookupByUUIDString(server).isActive())
            except libvirt.libvirtError:
                return False

        try:
            return await self._hosts.call(host, "look up server", active)
        except FailedError:
            return False

    async def _deliver(self) -> None:
        assert self._queue is not None
        # The last event delivered per running server: QEMU starts paused and libvirt resumes it
        # before reporting the start, so a "resumed" only counts after a "paused".
        last: dict[str, str] = {}
        while True:
            host, server, word = await self._queue.get()
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
