"""Servers: configuration, claims on drives, placement on hosts and the guest lifecycle."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from elastic_api.config import Config
from elastic_api.errors import BusyError, ElasticError, FailedError, MissingError
from elastic_api.hypervisor import DomainStats, Hypervisor
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml
from elastic_api.model.cloudinit import hostname_of, render_meta_data, render_user_data
from elastic_api.model.ids import new_id, parse_id
from elastic_api.model.pages import Page
from elastic_api.model.device import Device
from elastic_api.model.server import ServerConfig, settle, validate
from elastic_api.model.server_patch import Field, ServerPatch, apply_patch, check_live
from elastic_api.model.resource import Lease
from elastic_api.model.server_record import ACTIVE, Claim, ServerRecord
from elastic_api.service.drives import DriveService
from elastic_api.service.locks import NodeLocks
from elastic_api.service.quotas import QuotaService
from elastic_api.service.resources import ResourceService
from elastic_api.storage.seed import Seeds
from elastic_api.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerView:
    """A server as a client sees it: the record, and for a running one the addresses its NICs
    hold, its counters and the address its VNC display listens on."""

    record: ServerRecord
    leases: tuple[Lease, ...] = ()
    stats: DomainStats | None = None
    vnc_ip: str | None = None


class ServerService:
    def __init__(
        self,
        config: Config,
        store: Store,
        hypervisor: Hypervisor,
        drives: DriveService,
        resources: ResourceService,
        clock: Callable[[], int] = time.time_ns,
        seeds: Seeds | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.hypervisor = hypervisor
        self.drives = drives
        self.quotas: QuotaService = drives.quotas
        self.resources = resources
        self.clock = clock
        self.seeds = seeds if seeds is not None else Seeds(config.seed_dir)
        self.locks = NodeLocks(store, "server")

    async def get(self, user: str, server_id: str) -> ServerRecord:
        canonical = parse_id(server_id)
        found = await self.store.get_server(user, canonical) if canonical else None
        if found is None:
            raise MissingError(f"no such server: {server_id[:40]}")
        return found

    async def visible(self, user: str, page: Page) -> list[ServerRecord]:
        return await self.store.list_servers(user, page.limit, page.marker)

    async def _check_references(self, user: str, config: ServerConfig) -> None:
        """Every drive, IP and VLAN a configuration names must be one the user may use."""
        for slot in config.drives:
            await self.drives.get(user, slot.drive)
        for drive in config.avoid_drives:
            await self.drives.get(user, drive)
        await self.resources.check_references(user, config)
        for other in config.avoid_servers:
            await self.get(user, other)

    async def create(self, user: str, config: ServerConfig, *, start: bool) -> ServerRecord:
        server = new_id()
        config = validate(settle(config, server))
        await self._check_references(user, config)
        record = ServerRecord(server, user, config, created=self.clock())
        async with self.quotas.servers(user, count=1):
            await self.store.insert_server(record)
        if not start:
            return record
        try:
            return await self.start(user, server)
        except BaseException:
            # A server that could not start is not left behind half-made.
            await self.store.delete_server(user, server)
            await self.seeds.remove(server)
            raise

    async def _avoid_hosts(self, user: str, config: ServerConfig) -> set[str]:
        """Hosts running the servers the configuration avoids, or holding the drives it avoids
        (a drive is held on the host of each active server that claims it)."""
        hosts_of = {r.server: r.host for r in await self.store.active_servers()}
        avoid = {hosts_of.get(s) for s in config.avoid_servers}
        for drive_id in config.avoid_drives:
            try:
                drive = await self.drives.get(user, drive_id)
            except MissingError:
                continue  # destroyed, or no longer shared with the user: on no host to avoid
            avoid.update(hosts_of.get(s) for s in drive.claimed)
        return {h for h in avoid if h}

    async def start(self, user: str, server_id: str, *, hosts: Collection[str] | None = None) -> ServerRecord:
        """Start a stopped server; with `hosts`, on one of those alone (the ECS dialect's region
        less its isolated partners' hosts: strict, unlike `avoid`)."""
        record = await self.get(user, server_id)
        async with self.locks.hold(record.server):
            record = await self.get(user, record.server)
            if record.status == ACTIVE:
                raise BusyError(f"server {record.server} is already active")
            config = record.config
            disks: dict[Device, DiskSpec] = {}
            secrets: dict[str, bytes] = {}  # libvirt secret UUID → passphrase, for encrypted drives
            claims = []
            for slot in config.drives:
                drive = await self.drives.get(user, slot.drive)
                if drive.image_job is not None:
                    raise BusyError(f"drive {drive.drive} is being imaged")
                volume = self.drives.volume(drive)
                secret = None
                if volume.secret is not None:
                    secret = new_id()
                    secrets[secret] = volume.secret
                disks[slot.device] = DiskSpec(
                    path=str(self.drives.storage.path(volume)),
                    format=drive.format,
                    readonly=drive.owner != user or slot.media == "cdrom",
                    shareable=drive.claim_type == "shared",
                    secret=secret,
                )
                claims.append(Claim(slot.device, drive.drive))
            host = await self.hypervisor.place(config.mem, await self._avoid_hosts(user, config), only=hosts)
            started = int(time.time())
            async with self.quotas.servers(user, cpu=config.cpu, mem=config.mem):
                await self.store.activate_server(user, record.server, host, started, claims)
            try:
                self.config.log_dir.mkdir(parents=True, exist_ok=True)
                networks = await self.resources.wire(record, host)
                if any(nic.index not in networks for nic in config.nics):
                    await self.hypervisor.ensure_network(host, DomainSpec.default_network)
                seed = await self._seed(record.server, config)
                spec = DomainSpec(
                    server=record.server,
                    config=config,
                    disks=disks,
                    serial_log=str(self.serial_log(record.server)),
                    domain_type=(
                        self.config.domain_type
                        if self.config.domain_type != "auto"
                        else await self.hypervisor.domain_type(host)
                    ),
                    host_core_mhz=self.config.host_core_mhz,
                    # The operator's VNC address; the domain builder keeps a display without a
                    # password (or wanting TLS the host lacks) on loopback regardless.
                    vnc_listen=self.config.vnc_listen,
                    networks=networks,
                    installation=self.hypervisor.installation,
                    seed=seed,
                )
                xml = domain_xml(spec)
                for slot in config.drives:  # our own qcow2 exports would hold the guest's write lock
                    await self.drives.storage.release(self.drives.volume(await self.drives.get(user, slot.drive)))
                async with self._host_lock(host):
                    await self.hypervisor.start(host, xml, secrets)
            except BaseException:
                await self.resources.unwire(record, host)
                await self.store.deactivate_server(user, record.server)
                raise
            log.info("server %s started on %s", record.server, host)
            return dataclasses.replace(record, status=ACTIVE, host=host, started=started)

    async def _seed(self, server: str, config: ServerConfig) -> str | None:
        """The server's cloud-init seed, built again for this start from its configuration (its
        hostname from its name, its instance ID its UUID); None when it has none."""
        if config.cloudinit is None:
            return None
        customization = config.cloudinit.customization(hostname_of(config.name), server)
        path = await self.seeds.write(server, render_meta_data(customization), render_user_data(customization))
        return str(path)

    def _host_lock(self, host: str) -> AbstractAsyncContextManager[None]:
        """With other nodes on the store: one guest's start at a time on the host, across them,
        so two nodes never both place onto its last free memory (the hypervisor's own room
        check and reservation hold within one process; a started domain is counted by every
        node's next check), and a start-up's secrets sweep sees no start half-way. One node
        alone needs none of it: its hypervisor starts several guests on a host at once."""
        return self.store.node_lock("host", host) if self.store.several_nodes else contextlib.nullcontext()

    def serial_log(self, server: str) -> Path:
        return self.config.log_dir / f"{server}.serial.log"

    async def _active(self, user: str, server_id: str) -> ServerRecord:
        record = await self.get(user, server_id)
        if record.status != ACTIVE or record.host is None:
            raise BusyError(f"server {record.server} is not running")
        return record

    async def stop(self, user: str, server_id: str) -> None:
        """A power cut; the server then becomes stopped (persistent) or is destroyed."""
        record = await self._active(user, server_id)
        async with self.locks.hold(record.server):
            assert record.host is not None
            await self.hypervisor.stop(record.host, record.server)
            await self._stopped(user, record.server)

    async def shutdown(self, user: str, server_id: str) -> None:
        """An ACPI power-button press; the guest decides, and its power-off arrives as an event."""
        record = await self._active(user, server_id)
        assert record.host is not None
        await self.hypervisor.shutdown(record.host, record.server)

    async def reset(self, user: str, server_id: str) -> None:
        record = await self._active(user, server_id)
        assert record.host is not None
        await self.hypervisor.reset(record.host, record.server)

    async def destroy(self, user: str, server_id: str, *, manager: bool = False) -> None:
        """Stop and forget a server. One that another dialect manages (an ECS server) is that
        dialect's to destroy (`manager`): Busy for anyone else, so the dialects agree on it."""
        record = await self.get(user, server_id)
        if not manager:
            await _check_unmanaged(self.store, record.server)
        async with self.locks.hold(record.server):
            record = await self.get(user, record.server)
            if record.status == ACTIVE and record.host is not None:
                await self.hypervisor.stop(record.host, record.server)
                await self.resources.unwire(record, record.host)
                await self.store.deactivate_server(user, record.server)
            await self.store.delete_server(user, record.server)
            await self.seeds.remove(record.server)

    async def set(
        self, user: str, server_id: str, patch: ServerPatch, *, check: Callable[[ServerConfig], object] | None = None
    ) -> ServerRecord:
        """The server after `patch`. An active server takes only the changes model.check_live
        allows (LiveChangeRefused otherwise), its CPU share and VNC password applied to the
        running guest. `check`: the dialect's own look at the change against the configuration
        it applies to, run first, under the server's lock (its errors are the dialect's)."""
        record = await self.get(user, server_id)
        async with self.locks.hold(record.server):
            record = await self.get(user, record.server)
            if check is not None:
                check(record.config)
            config = apply_patch(record.config, patch, record.server)
            if record.status == ACTIVE and record.host is not None:
                changed = check_live(record.config, config)
                if Field("cpu") in changed:
                    async with self.quotas.servers(user, cpu=config.cpu - record.config.cpu):
                        await self.hypervisor.set_cpu_live(record.host, record.server, config.cpu)
                        await self.store.update_server_config(user, dataclasses.replace(record, config=config))
                if Field("vnc_password") in changed and config.vnc is not None:
                    await self.hypervisor.set_vnc_password_live(record.host, record.server, config.vnc_password or "")
            else:
                await self._check_references(user, config)
            updated = dataclasses.replace(record, config=config)
            if not await self.store.update_server_config(user, updated):
                raise MissingError(f"no such server: {server_id[:40]}")
            return updated

    async def stats(self, record: ServerRecord) -> DomainStats | None:
        """A running server's counters; None when it is not running or its host could not say
        (logged: a listing must not fail for one server's counters)."""
        if record.status != ACTIVE or record.host is None:
            return None
        try:
            return await self.hypervisor.stats(record.host, record.server)
        except ElasticError as e:
            log.warning("no statistics for server %s: %s", record.server, e.message)
            return None

    async def info(self, record: ServerRecord) -> ServerView:
        """The server as a client sees it: for a running one, with its addresses, counters and
        VNC address (without the last two when the hypervisor cannot give its counters)."""
        if record.status != ACTIVE or record.host is None:
            return ServerView(record)
        leases = tuple(await self.store.server_leases(record.owner, record.server))
        stats = await self.stats(record)
        if stats is None:
            return ServerView(record, leases)
        vnc_ip = None
        if record.config.vnc is not None:
            exposed = record.config.vnc_password and not record.config.vnc_tls
            vnc_ip = self.config.vnc_listen if exposed else "127.0.0.1"
        return ServerView(record, leases, stats, vnc_ip)

    # -- the guest's own lifecycle ---------------------------------------------------------------
    async def _stopped(self, user: str, server: str) -> None:
        """The guest is gone: release its drives; keep it stopped if persistent, else forget it."""
        record = await self.store.get_server(user, server)
        if record is None:
            return
        await self.resources.unwire(record, record.host)
        if record.host is not None:
            try:  # the libvirt secrets of its encrypted drives live only as long as the guest
                await self.hypervisor.remove_secrets(record.host, server)
            except ElasticError as e:
                log.warning("secrets of server %s not removed: %s", server, e.message)
        await self.store.deactivate_server(user, server)
        if not record.config.persistent:
            await self.store.delete_server(user, server)
            await self.seeds.remove(server)
            log.info("server %s stopped and, not being persistent, was destroyed", server)
        else:
            log.info("server %s stopped", server)

    async def on_event(self, server: str, event: str) -> None:
        """Hypervisor lifecycle events: a guest that stopped for any reason (power-off, crash,
        shutdown) releases its claims like a stop through the API."""
        if event != "stopped":
            return
        owner = await self.store.server_owner(server)
        if owner is None:
            return
        async with self.locks.hold(server):
            record = await self.store.get_server(owner, server)
            if record is not None and record.status == ACTIVE and record.host is not None:
                running = await self.hypervisor.running(hosts=[record.host])
                if server not in running:
                    await self._stopped(owner, server)

    async def reconcile(self) -> None:
        """At start-up: every host is reconciled (reconcile_host). A host that cannot be reached
        now is left as the database has it until its connection comes back (on_host_back), so one
        dead host neither keeps the API from starting nor has its guests taken for stopped.
        Servers active on a host no longer configured stopped with it. Then the resources."""
        configured = set(self.hypervisor.host_names)
        for record in await self.store.active_servers():
            if record.host not in configured:
                log.info("server %s was active on host %s, which is no longer configured", record.server, record.host)
                await self._stopped(record.owner, record.server)
        for host in self.hypervisor.host_names:
            try:
                await self.reconcile_host(host, sweep=True)
            except FailedError as e:
                log.error("host %s not reconciled (%s): it will be when its connection is back", host, e.message)
        await self.resources.reconcile()
        await self.sweep_seeds()

    async def sweep_seeds(self) -> None:
        """Remove the seeds of servers that no longer exist (their removal was cut short by a
        crash). Seeds are listed before the servers are read: a seed being built now belongs to a
        server whose row was written before it, so the read sees that server."""
        seeded = await self.seeds.servers()
        known = {record.server for record in await self.store.all_servers()}
        for server in seeded:
            if server not in known:
                log.info("removing the cloud-init seed of server %s, which no longer exists", server)
                await self.seeds.remove(server)

    async def on_host_back(self, host: str) -> None:
        """The host's connection came back after a loss: guests that stopped meanwhile sent no
        event we saw, so reconcile it as at start-up (but for the secrets sweep: a libvirtd that
        restarted has dropped its ephemeral secrets anyway, and starts under way define theirs)."""
        await self.reconcile_host(host, sweep=False)

    async def reconcile_host(self, host: str, *, sweep: bool) -> None:
        """One host against the database. Servers the database holds active there but the host
        no longer runs stopped behind our back (while the API was down or the host out of reach):
        they stop now (persistent → stopped, else destroyed). Our domains there the database does
        not hold active are powered off (running them would hold drives nobody claimed). Secrets
        of our guests no longer running go (with `sweep`: only while no start can be under way,
        at start-up). Only this installation's domains and secrets count
        (hypervisor.running); those from before installation IDs are adopted when the database
        knows their server, so an upgrade keeps its guests and another installation's are never
        touched. Each change is made under the server's lock and after a second look, as starts
        and stops through the API may be under way. One node at a time reconciles a host (the
        others, starting or seeing it come back, wait and then find nothing to do)."""
        async with self.store.node_lock("reconcile", host):
            await self._reconcile_host(host, sweep=sweep)

    async def _reconcile_host(self, host: str, *, sweep: bool) -> None:
        adopt = {record.server for record in await self.store.all_servers()}
        # Domains first, rows second: a start activates its row before it makes its domain, so a
        # domain seen here has a row that the read below sees active.
        running = await self.hypervisor.running(adopt, hosts=[host])
        known = set()
        for record in await self.store.active_servers():
            if record.host != host:
                continue
            known.add(record.server)
            if record.server not in running:
                async with self.locks.hold(record.server):
                    current = await self.store.get_server(record.owner, record.server)
                    if (
                        current is not None
                        and current.status == ACTIVE
                        and current.host == host
                        and record.server not in await self.hypervisor.running(adopt, hosts=[host])
                    ):
                        log.info("server %s stopped while its host %s was not watched", record.server, host)
                        await self._stopped(record.owner, record.server)
        for server in running:
            if server not in known:
                async with self.locks.hold(server):
                    owner = await self.store.server_owner(server)
                    current = await self.store.get_server(owner, server) if owner is not None else None
                    if current is not None and current.status == ACTIVE and current.host == host:
                        continue  # started since the look above
                    log.warning("powering off domain of server %s on %s: not active in the database", server, host)
                    await self.hypervisor.stop(host, server)
        if not sweep:
            return
        try:  # secrets of guests that stopped while we were not watching, or of starts cut short
            async with self._host_lock(host):  # no other node's start half-way (its secrets made)
                if self.store.several_nodes:  # looked at again: guests other nodes started since
                    running = await self.hypervisor.running(adopt, hosts=[host])
                    known = {r.server for r in await self.store.active_servers() if r.host == host}
                await self.hypervisor.sweep_secrets(known & set(running), adopt, hosts=[host])
        except ElasticError as e:
            log.warning("host %s: stale secrets not removed: %s", host, e.message)


async def _check_unmanaged(store: Store, uuid: str) -> None:
    name = await store.ecs_manager_of(uuid)
    if name is not None:
        raise BusyError(f"{uuid} is managed by the ECS API as server {name}: delete it there")
