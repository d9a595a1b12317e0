"""Servers as transient libvirt domains: start, stop, shut down, reset, live changes, counters,
and the list of those running."""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

import libvirt

from elastic_api.errors import FailedError, FullError, InternalError
from elastic_api.hypervisor.base import DomainSample, DomainStats
from elastic_api.hypervisor.domain import CPU_PERIOD_US, cpu_quota, installation_of, server_of
from elastic_api.hypervisor.libvirt.hosts import Hosts
from elastic_api.hypervisor.libvirt.secrets import Secrets, define_secrets, remove_secrets
from elastic_api.hypervisor.libvirt.stats import SAMPLE_GROUPS, read_stats, sample_of

T = TypeVar("T")


def _memory_mb(root: ET.Element) -> int:
    memory = root.find("memory")
    if memory is None or not (memory.text or "").strip().isdigit():
        raise FailedError("the domain XML has no memory size")
    scale = {
        "b": 1 / 2**20,
        "bytes": 1 / 2**20,
        "kib": 1 / 1024,
        "k": 1 / 1024,
        "mib": 1,
        "m": 1,
        "gib": 1024,
        "g": 1024,
    }.get(memory.get("unit", "KiB").lower())
    if scale is None:
        raise FailedError("the domain XML's memory unit is not understood")
    return int(int((memory.text or "0").strip()) * scale)


class Domains:
    """`ours` is shared with the event delivery: the servers whose domains are known to be this
    installation's (see events.Events)."""

    def __init__(
        self, hosts: Hosts, secrets: Secrets, installation: str, ours: set[str], *, host_core_mhz: int = 2000
    ) -> None:
        self._hosts = hosts
        self._secrets = secrets
        self._installation = installation
        self._ours = ours
        self._host_core_mhz = host_core_mhz
        self._log = logging.getLogger(__name__)

    async def start(self, host: str, xml: str, secrets: Mapping[str, bytes] | None = None) -> None:
        """Start a transient domain from domain_xml() on host. Memory is checked and reserved
        under the host's lock, so concurrent starts cannot together overfill it (FullError).
        `secrets` (libvirt secret UUID → LUKS passphrase, for the domain's encrypted disks) are
        defined first and removed again if the domain does not start."""
        root = ET.fromstring(xml)
        server = root.findtext("uuid") or ""
        if installation_of(root) != self._installation:
            raise InternalError(f"server {server}: the domain XML does not carry this installation's ID")
        mem_mb = _memory_mb(root)
        target = self._hosts.host(host)
        async with target.reserve_lock:
            room = await self._hosts.room(target)
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
                define_secrets(conn, server, self._installation, secrets or {})
                # No AUTODESTROY: guests keep running while the API restarts; running() finds them.
                conn.createXML(xml, 0)
            except BaseException:
                if secrets:
                    remove_secrets(
                        conn, lambda owner, installation: owner == server and installation == self._installation
                    )
                raise

        self._ours.add(server)  # before the start, so that its "started" event is taken as ours
        try:
            await self._hosts.call(host, f"start server {server}", create)
        finally:
            target.reserved.pop(server, None)

    async def _domain_call(
        self, host: str, server: str, what: str, fn: Callable[[libvirt.virDomain], T], *, missing_ok: bool = False
    ) -> T | None:
        def call(conn: libvirt.virConnect) -> T | None:
            try:
                dom = conn.lookupByUUIDString(server)
                return fn(dom)
            except libvirt.libvirtError as e:
                if missing_ok and e.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                    return None
                raise

        return await self._hosts.call(host, f"{what} server {server}", call)

    async def stop(self, host: str, server: str) -> None:
        """Power cut, and the run's secrets go with it. A server that is already off is not an
        error: the result is the same."""
        await self._domain_call(host, server, "stop", lambda dom: dom.destroy(), missing_ok=True)
        await self._secrets.remove_secrets(host, server)

    async def shutdown(self, host: str, server: str) -> None:
        """Ask the guest to power down (ACPI power button: the domains have no guest agent, so
        libvirt's default method is ACPI). The guest may ignore it; its power-off arrives as a
        "stopped" event. Nothing to do for a server that is already off."""
        await self._domain_call(host, server, "shut down", lambda dom: dom.shutdown(), missing_ok=True)

    async def reset(self, host: str, server: str) -> None:
        """Hard reset: the guest reboots at once, without shutting down; the run goes on."""
        await self._domain_call(host, server, "reset", lambda dom: dom.reset(0))

    async def set_cpu_live(self, host: str, server: str, cpu_mhz: int) -> None:
        """Apply a new CPU allowance to a running server: a new CFS quota over its current vCPUs
        (their count cannot change until the next start)."""

        def apply(dom: libvirt.virDomain) -> None:
            vcpus = int(dom.info()[3])
            dom.setSchedulerParametersFlags(
                {"vcpu_period": CPU_PERIOD_US, "vcpu_quota": cpu_quota(cpu_mhz, self._host_core_mhz, vcpus)},
                libvirt.VIR_DOMAIN_AFFECT_LIVE,
            )

        await self._domain_call(host, server, "change the CPU of", apply)

    async def set_vnc_password_live(self, host: str, server: str, password: str) -> None:
        """Apply a new VNC password to a running server's VNC display."""

        def apply(dom: libvirt.virDomain) -> None:
            graphics = ET.fromstring(dom.XMLDesc(0)).find("devices/graphics[@type='vnc']")
            if graphics is None:
                raise FailedError(f"server {server} has no VNC display")
            graphics.set("passwd", password)
            dom.updateDeviceFlags(ET.tostring(graphics, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)

        await self._domain_call(host, server, "change the VNC password of", apply)

    async def stats(self, host: str, server: str) -> DomainStats:
        """A running server's counters (see stats.read_stats)."""
        result = await self._domain_call(host, server, "read the counters of", read_stats)
        assert result is not None
        return result

    async def samples(self, host: str, servers: Collection[str]) -> list[DomainSample]:
        """The counters of those of `servers` running on host, from one bulk call
        (getAllDomainStats). A domain not yet known as ours is looked at once: carrying our ID
        or none (the caller names it, which adopts it, as in running()) it is ours; another
        installation's is left out."""
        wanted, known = frozenset(servers), frozenset(self._ours)

        def collect(conn: libvirt.virConnect) -> tuple[list[DomainSample], list[str]]:
            records = conn.getAllDomainStats(SAMPLE_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
            at = time.time()
            found, adopted = [], []
            for dom, record in records:
                server = server_of(dom.name())
                if server is None or server not in wanted:
                    continue
                if server not in known:
                    try:
                        owner = installation_of(dom.XMLDesc(0))
                    except libvirt.libvirtError:
                        continue  # gone since the statistics were read
                    if owner not in (None, self._installation):
                        continue
                    adopted.append(server)
                found.append(sample_of(server, at, record))
            return found, adopted

        found, adopted = await self._hosts.call(host, "read the servers' statistics", collect)
        self._ours.update(adopted)  # on the loop: the events read this set there
        return found

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
                if owner == self._installation or (owner is None and server in adopted):
                    found.append(server)
                else:
                    self._log.debug("domain %s is not this installation's (installation %s)", dom.name(), owner)
            return found

        found: dict[str, str] = {}
        for name in self._hosts.names if hosts is None else hosts:
            for server in await self._hosts.call(name, "list servers", ours):
                found[server] = name
        self._ours.update(found)
        return found
