"""ECS server snapshots and the `rollback` action (ECS.md §4 Snapshot, §5).

A snapshot is an internal qcow2 snapshot of the server's boot drive (storage/snapshots.py says
why not an overlay chain), taken by a `create_snapshot` action while the server is **stopped**:
QEMU holds the drive's file (and its write lock) while the guest runs, and a snapshot taken
under a running guest would at best be crash-consistent; libvirt's own snapshot API would save
the guest's memory too, and its metadata would follow the domain around. So a snapshot asked of
a running server is a 409 ("power it off first"), as is one asked while another action runs.

Rollback applies a snapshot: the server shows `Reimaging`, its guest is stopped (a hard stop,
as power_off), the drive is pointed back at the snapshot, the guest started again if it was
running, then `Booted` with the snapshot shown as `last_restored_snapshot`. Both jobs may run
again after a restart (a snapshot re-made under its tag, a snapshot applied twice is applied
once), so they are resumed rather than failed.
"""

from __future__ import annotations

import logging
import time

from elastic_api.config import Config
from elastic_api.errors import BusyError, ElasticError, Invalid, MissingError
from elastic_api.model import ecs as model
from elastic_api.model.ecs import EcsServer
from elastic_api.model.job import CREATE_SNAPSHOT, ROLLBACK, Job, SnapshotParams
from elastic_api.model.server_record import ACTIVE
from elastic_api.model.snapshot import CREATED, CREATING, DELETING, FAILED, REIMAGING, Snapshot, check_text
from elastic_api.service.drives import DriveService
from elastic_api.service.ecs_actions import EcsActions
from elastic_api.service.ecs_servers import EcsServerService
from elastic_api.service.jobs import JobFailed, JobRunner, Progress
from elastic_api.service.servers import ServerService
from elastic_api.storage import Storage
from elastic_api.store import Store

log = logging.getLogger(__name__)


class SnapshotService:
    def __init__(
        self,
        config: Config,
        store: Store,
        storage: Storage,
        jobs: JobRunner,
        drives: DriveService,
        servers: ServerService,
        ecs: EcsServerService,
        actions: EcsActions,
    ) -> None:
        self.config = config
        self.store = store
        self.storage = storage
        self.jobs = jobs
        self.drives = drives
        self.servers = servers
        self.ecs = ecs
        self.actions = actions
        slots = config.max_ecs_actions
        jobs.register(CREATE_SNAPSHOT, self._create, concurrency=slots, idempotent=True)
        jobs.register(ROLLBACK, self._rollback, concurrency=slots, idempotent=True)

    # -- checks shared with templates -------------------------------------------------------------
    async def running(self, server: EcsServer) -> bool:
        """Whether the server's guest runs (its drive's file is QEMU's)."""
        if server.server is None:
            return False
        try:
            return (await self.servers.get(server.owner, server.server)).status == ACTIVE
        except MissingError:
            return False

    async def ready(self, server: EcsServer) -> None:
        """409 unless the server is Booted with no action in progress and a qcow2 boot drive."""
        if server.status != model.BOOTED or server.drive is None:
            raise BusyError(f"server {server.name} is {server.status}")
        if any(job.unfinished for job in await self.store.jobs_of(server.owner, server.name)):
            raise BusyError(f"server {server.name} has an action in progress")
        drive = await self.drives.owned(server.owner, server.drive)
        if drive.format != "qcow2":
            raise BusyError(f"the boot drive of {server.name} is {drive.format}: snapshots need a qcow2 drive")

    # -- the request side -----------------------------------------------------------------------
    async def list(self, user: str, scope: str | None, name: str) -> tuple[EcsServer, list[Snapshot]]:
        server = await self.ecs.get(user, scope, name)
        return server, await self.store.list_snapshots(user, server.id)

    async def get(self, user: str, scope: str | None, name: str, id_: int) -> tuple[EcsServer, Snapshot]:
        server = await self.ecs.get(user, scope, name)
        snapshot = await self.store.get_snapshot(user, id_)
        if snapshot is None or snapshot.server != server.id:
            raise MissingError(f"snapshot not found: {id_}")
        return server, snapshot

    async def create(
        self, user: str, scope: str | None, name: str, description: str, notes: str
    ) -> tuple[EcsServer, Snapshot, Job]:
        for field, text in (("description", description), ("notes", notes)):
            if (why := check_text(field, text)) is not None:
                raise Invalid(why)
        server = await self.ecs.get(user, scope, name)
        async with self.ecs.locks.hold(server.name):
            server = await self.ecs.get(user, scope, name)
            await self.ready(server)
            if await self.running(server):
                raise BusyError(f"server {server.name} is running: power it off before taking a snapshot")
            existing = await self.store.list_snapshots(user, server.id)
            # Its parent: the snapshot the drive was last rolled back to, else the newest made.
            parent = next((s for s in existing if s.last_restored), None) or next(
                (s for s in reversed(existing) if s.status == CREATED), None
            )
            now = time.time_ns()
            snapshot = await self.store.insert_snapshot(
                Snapshot(0, user, server.id, description, notes, CREATING, now, now, parent.id if parent else None),
                self.config.max_snapshots_per_server,
            )
            job = await self.jobs.submit(Job(0, CREATE_SNAPSHOT, user, server.name, SnapshotParams(snapshot.id)))
        return server, snapshot, self.jobs.live(job)

    async def delete(self, user: str, scope: str | None, name: str, id_: int) -> None:
        """Forget a snapshot (done at once: qemu-img frees it in milliseconds). A made one needs
        the server stopped and idle (409 otherwise); a failed one is only a row."""
        server, snapshot = await self.get(user, scope, name, id_)
        async with self.ecs.locks.hold(server.name):
            server, snapshot = await self.get(user, scope, name, id_)
            if any(job.unfinished for job in await self.store.jobs_of(server.owner, server.name)):
                raise BusyError(f"server {server.name} has an action in progress")
            if snapshot.status == CREATED and server.drive is not None:
                if await self.running(server):
                    raise BusyError(f"server {server.name} is running: power it off before deleting a snapshot")
                drive = await self.drives.owned(user, server.drive)
                self.drives.check_unclaimed(drive)
                await self.storage.snapshot(self.drives.volume(drive), "delete", snapshot.tag)
            await self.store.delete_snapshot(snapshot.id)
            log.info("snapshot %d of %s deleted", snapshot.id, server.name)

    async def rollback(self, user: str, scope: str | None, name: str, id_: int | None) -> Job:
        """The `rollback` action: 400 without a snapshot, 404 for one not of this server (another
        user's alike), 409 while the server is busy or the snapshot is not made."""
        if id_ is None:
            raise Invalid("snapshot is required for a rollback")
        server, snapshot = await self.get(user, scope, name, id_)
        async with self.ecs.locks.hold(server.name):
            server, snapshot = await self.get(user, scope, name, id_)
            await self.ready(server)
            if snapshot.status != CREATED:
                raise BusyError(f"snapshot {snapshot.id} is not made ({snapshot.status})")
            restart = await self.running(server)
            await self.store.update_ecs_server(server.id, status=REIMAGING)
            job = await self.jobs.submit(Job(0, ROLLBACK, user, server.name, SnapshotParams(snapshot.id, restart)))
        return self.jobs.live(job)

    async def recover(self, *, alone: bool = True) -> None:
        """At start-up, after the job runner took its jobs back: a server left Reimaging without
        a rollback to finish it (a crash between its status and its job) is Booted again (its
        drive was never touched), and a snapshot or template left being made without its job is
        failed, so nothing stays in a passing status for good. Not `alone` (other nodes run, and
        one may be between a row and its job): only rows older than a job lease, and Reimaging
        (which keeps no time) is left to a node that starts alone."""
        settled = time.time_ns() - self.config.job_lease_seconds * 1_000_000_000
        for server in await self.store.list_ecs_servers(None):
            jobs = await self.store.jobs_of(server.owner, server.name)
            if any(job.unfinished for job in jobs):
                continue
            if server.status == REIMAGING and alone:
                log.warning("ECS server %s was left Reimaging without a rollback: Booted again", server.name)
                await self.store.update_ecs_server(server.id, status=model.BOOTED)
            for snapshot in await self.store.list_snapshots(server.owner, server.id):
                if snapshot.status == CREATING and (alone or snapshot.updated < settled):
                    await self.store.update_snapshot(snapshot.id, FAILED, time.time_ns())
            for template in await self.store.list_templates(server.owner):
                if (
                    template.status == CREATING
                    and template.source == server.name
                    and (alone or template.created < settled)
                ):
                    await self.store.update_template(template.id, status=FAILED)
        if not alone:
            return
        # A template left Deleting without its action (the same crash, on DELETE): made again.
        for owner in {server.owner for server in await self.store.list_ecs_servers(None)}:
            for template in await self.store.list_templates(owner):
                if template.status == DELETING and not any(
                    job.unfinished for job in await self.store.jobs_of(owner, template.name)
                ):
                    await self.store.update_template(template.id, status=CREATED)

    # -- the jobs -------------------------------------------------------------------------------
    async def _parts(self, job: Job) -> tuple[EcsServer, Snapshot]:
        params = job.params
        assert isinstance(params, SnapshotParams)
        id_ = model.server_id(job.resource)
        server = await self.store.ecs_server_by_id(id_) if id_ is not None else None
        if server is None or server.owner != job.owner:
            raise JobFailed(f"server {job.resource} no longer exists")
        snapshot = await self.store.get_snapshot(job.owner, params.snapshot)
        if snapshot is None or snapshot.server != server.id:
            raise JobFailed(f"snapshot {params.snapshot} no longer exists")
        if server.drive is None:
            raise JobFailed(f"server {server.name} has no boot drive")
        return server, snapshot

    async def _create(self, job: Job, progress: Progress) -> None:
        server, snapshot = await self._parts(job)
        if snapshot.status != CREATING:
            return  # a re-run after it was made
        assert server.drive is not None
        try:
            if await self.running(server):
                raise JobFailed(f"server {server.name} was started before its snapshot was taken")
            drive = await self.drives.owned(server.owner, server.drive)
            self.drives.check_unclaimed(drive)
            progress(50)
            # Made anew under its tag when a crash left it made but its row not marked.
            await self.storage.snapshot(self.drives.volume(drive), "create", snapshot.tag)
        except ElasticError as e:
            await self.store.update_snapshot(snapshot.id, FAILED, time.time_ns())
            raise JobFailed(f"snapshot of {server.name} failed: {e.message}") from None
        except JobFailed:
            await self.store.update_snapshot(snapshot.id, FAILED, time.time_ns())
            raise
        await self.store.update_snapshot(snapshot.id, CREATED, time.time_ns())
        log.info("snapshot %d of %s made", snapshot.id, server.name)

    async def _rollback(self, job: Job, progress: Progress) -> None:
        params = job.params
        assert isinstance(params, SnapshotParams)
        try:
            server, snapshot = await self._parts(job)
            assert server.drive is not None and server.server is not None
            try:
                if await self.running(server):
                    await self.servers.stop(server.owner, server.server)  # a hard stop, as power_off
                progress(30)
                drive = await self.drives.owned(server.owner, server.drive)
                await self.storage.snapshot(self.drives.volume(drive), "apply", snapshot.tag)
                await self.store.mark_restored(snapshot.id, time.time_ns())
                progress(70)
            except ElasticError as e:
                # The drive is as it was: the guest goes back to what it was doing.
                await self._restart(server, params.restart)
                raise JobFailed(f"rollback of {server.name} failed: {e.message}") from None
            await self._restart(server, params.restart)
            log.info("server %s rolled back to snapshot %d", server.name, snapshot.id)
        finally:
            # Booted again whatever happened (a server gone meanwhile has no row to change).
            id_ = model.server_id(job.resource)
            if id_ is not None:
                await self.store.update_ecs_server(id_, status=model.BOOTED)

    async def _restart(self, server: EcsServer, wanted: bool) -> None:
        if not wanted or await self.running(server):
            return
        assert server.server is not None
        hosts = await self.actions.allowed_hosts(server)
        if not hosts:
            raise JobFailed(f"no host of {server.location} is free of the servers {server.name} is isolated from")
        try:
            await self.servers.start(server.owner, server.server, hosts=hosts)
            await self.store.update_ecs_server(server.id, ipv4=await self.actions.ipv4(server.owner, server.server))
        except ElasticError as e:
            raise JobFailed(f"{server.name} was not started again: {e.message}") from None
