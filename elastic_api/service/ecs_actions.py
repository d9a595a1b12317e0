"""The ECS actions as jobs of the engine's runner (service/jobs.py): create_server, delete_server,
power_on, power_off. Each works through the typed services, as a client of the engine would.

After a restart (ECS.md §5: never left in-progress):
- create_server is resumable, so idempotent: each step is recorded on the server's row once done
  (drive made, image asked, imaged, engine server made, started) and a re-run goes on from the
  last one; the image copy rewrites its whole target, so asking for it again is harmless.
- delete_server is idempotent: each step accepts what is already gone.
- power_on and power_off are not: a power change re-run after an unknown delay could undo what
  happened since; they fail ("interrupted") and the owner asks again, seeing the truth in /status.
"""

from __future__ import annotations

import asyncio
import logging

from elastic_api.config import Config
from elastic_api.errors import ElasticError, MissingError
from elastic_api.model import ecs as model
from elastic_api.model.device import Device
from elastic_api.model.drive import DriveSpec
from elastic_api.model.ecs import EcsServer
from elastic_api.model.ecs_networks import vlan_nics
from elastic_api.model.job import CREATE_SERVER, DELETE_SERVER, POWER_OFF, POWER_ON, Job
from elastic_api.model.server import DriveSlot, Nic, ServerConfig
from elastic_api.model.server_record import ACTIVE
from elastic_api.service import ecs_customizing as customizing
from elastic_api.service.catalogue import CatalogueService
from elastic_api.service.drives import DriveService
from elastic_api.service.imaging import ImagingService
from elastic_api.service.jobs import JobFailed, JobRunner, Progress
from elastic_api.service.servers import ServerService
from elastic_api.store import Store

log = logging.getLogger(__name__)

GiB = 1024**3
BOOT = Device("virtio", 0, 0)  # block:0 in the other dialect's words
# Where a create's progress stands after each step (imaging moves it from 10 to 90).
DRIVE_DONE, IMAGE_FROM, IMAGE_TO, SERVER_DONE = 5, 10, 90, 95


def engine_config(server: EcsServer) -> ServerConfig:
    """The engine's server an ECS server is: persistent (it survives its power-off), its boot
    drive on virtio block 0, one virtio NIC with an automatic lease on the public network, then
    one virtio NIC per VLAN its `networks` named (model/ecs_networks.py), VNC, and a cloud-init
    seed (rebuilt at each start by the server service, removed with it)."""
    return ServerConfig(
        name=server.name,
        cpu=server.cpu,
        mem=server.ram_mb,
        smp=server.cores,
        persistent=True,
        drives=(DriveSlot(BOOT, server.drive or ""),),
        boot=(BOOT,),
        nics=(Nic(0, "virtio", dhcp="auto"), *vlan_nics(server.vlans)),
        vnc="auto",
        tags=(model.TAG,),
        # Every ECS server has a seed: at least its hostname (its name) and instance ID.
        cloudinit=server.setup,
    )


class EcsActions:
    def __init__(
        self,
        config: Config,
        store: Store,
        jobs: JobRunner,
        catalogue: CatalogueService,
        drives: DriveService,
        imaging: ImagingService,
        servers: ServerService,
    ) -> None:
        self.config = config
        self.store = store
        self.jobs = jobs
        self.catalogue = catalogue
        self.drives = drives
        self.imaging = imaging
        self.servers = servers
        slots = config.max_ecs_actions
        jobs.register(CREATE_SERVER, self._create, concurrency=slots, idempotent=True)
        jobs.register(DELETE_SERVER, self._delete, concurrency=slots, idempotent=True)
        jobs.register(POWER_ON, self._power_on, concurrency=slots, idempotent=False)
        jobs.register(POWER_OFF, self._power_off, concurrency=slots, idempotent=False)

    async def _row(self, job: Job) -> EcsServer:
        id_ = model.server_id(job.resource)
        row = await self.store.ecs_server_by_id(id_) if id_ is not None else None
        if row is None or row.owner != job.owner:
            raise JobFailed(f"server {job.resource} no longer exists")
        return row

    # -- placement --------------------------------------------------------------------------------
    async def allowed_hosts(self, server: EcsServer) -> list[str]:
        """The hosts of the server's region less those running a server it is isolated from."""
        partners = {p.server for p in await self.store.ecs_partners(server.id) if p.server}
        taken = {r.host for r in await self.store.active_servers() if r.server in partners and r.host}
        return [h for h in self.catalogue.hosts_of(server.location) if h not in taken]

    async def _start(self, server: EcsServer) -> None:
        hosts = await self.allowed_hosts(server)
        if not hosts:
            raise JobFailed(f"no host of {server.location} is free of the servers {server.name} is isolated from")
        assert server.server is not None
        await self.servers.start(server.owner, server.server, hosts=hosts)

    # -- create -----------------------------------------------------------------------------------
    async def _create(self, job: Job, progress: Progress) -> None:
        server = await self._row(job)
        if server.status not in model.CREATING:
            return  # a re-run after the create finished (or was given up)
        try:
            await self._build(server, progress)
        except asyncio.CancelledError:
            raise  # this process stops: the job resumes at the next start
        except ElasticError as e:
            await self.give_up(server, e.message)
            raise JobFailed(f"create of {server.name} failed: {e.message}") from None
        except JobFailed as e:
            await self.give_up(server, e.message)
            raise
        except Exception:
            log.exception("create of %s failed", server.name)
            await self.give_up(server, "internal error")
            raise JobFailed(f"create of {server.name} failed: internal error") from None

    async def _step(self, row: EcsServer, progress: Progress, percent: int, **changes: object) -> EcsServer:
        await self.store.update_ecs_server(row.id, progress=percent, **changes)
        progress(percent)
        return await self._reload(row)

    async def _reload(self, server: EcsServer) -> EcsServer:
        row = await self.store.ecs_server_by_id(server.id)
        if row is None:
            raise JobFailed(f"server {server.name} no longer exists")
        return row

    async def _build(self, server: EcsServer, progress: Progress) -> None:
        user = server.owner
        if server.drive is None:
            # The quota held since the request is handed to the drive as it is made. qcow2 (with
            # LUKS inside when encrypted) whatever the default format: thin, and able to hold
            # snapshots (ECS.md §9).
            await self.store.update_ecs_server(server.id, held_drive=0)
            drive = await self.drives.create(
                user, DriveSpec(name=server.name, size=server.disk_gb * GiB, format="qcow2", tags=(model.TAG,))
            )
            server = await self._step(server, progress, DRIVE_DONE, drive=drive.drive, stage=model.DRIVE_MADE)
        assert server.drive is not None
        if server.stage in (model.NEW, model.DRIVE_MADE):
            # The library keeps images gzipped: imaged with gunzip, as real clients do.
            await self.imaging.image(user, server.drive, server.image, "gunzip")
            server = await self._step(server, progress, IMAGE_FROM, stage=model.IMAGING)
        if server.stage == model.IMAGING:
            await self._imaged(server, progress)
            server = await self._step(server, progress, IMAGE_TO, stage=model.IMAGED)
        if server.server is None:
            await self.store.update_ecs_server(server.id, held_server=0)
            record = await self.servers.create(user, engine_config(server), start=False)
            server = await self._step(server, progress, SERVER_DONE, server=record.server, stage=model.SERVER_MADE)
        assert server.server is not None
        record = await self.servers.get(user, server.server)
        await self.store.update_ecs_server(server.id, held_run=0)
        if record.status != ACTIVE:
            await self._start(server)
        if server.setup.script:
            await self._customized(server)
        await self.store.update_ecs_server(
            server.id, status=model.BOOTED, stage=model.STARTED, progress=100, ipv4=await self.ipv4(user, server.server)
        )
        log.info("ECS server %s booted", server.name)

    async def _customized(self, server: EcsServer) -> None:
        """`Customizing` from the script's BEGIN marker until its END (or the configured bound);
        a failed or silent script leaves a warning in the program's log, never the password."""
        assert server.server is not None

        async def begun() -> None:
            await self.store.update_ecs_server(server.id, status=model.CUSTOMIZING)

        outcome = await customizing.watch(
            self.servers.serial_log(server.server),
            frozenset({server.server}),  # the seed's instance ID is the engine server's UUID
            poll=self.config.ecs_poll_seconds,
            give_up_after=self.config.ecs_customize_timeout_seconds,
            on_begin=begun,
        )
        if outcome.note:
            log.warning("ECS server %s: %s", server.name, outcome.note)

    async def _imaged(self, server: EcsServer, progress: Progress) -> None:
        """Wait for the boot drive's image job, its progress mapped onto 10-90."""
        assert server.drive is not None
        while True:
            drive = await self.drives.get(server.owner, server.drive)
            if drive.image_job is None:
                break
            progress(IMAGE_FROM + drive.image_job.progress * (IMAGE_TO - IMAGE_FROM) // 100)
            await asyncio.sleep(self.config.ecs_poll_seconds)
        if drive.imaging_error:
            raise JobFailed(drive.imaging_error)

    async def ipv4(self, user: str, engine_server: str) -> str:
        leases = await self.store.server_leases(user, engine_server)
        return next((lease.ip for lease in leases if lease.nic == 0), "")

    async def give_up(self, server: EcsServer, why: str) -> None:
        """A create that failed: its drive and lease go, the row stays `Fail` until deleted."""
        log.warning("ECS server %s failed: %s", server.name, why)
        try:
            server = await self._reload(server)
            await self.release(server)
        except Exception:  # the row is marked whatever happened; the delete tries again
            log.exception("parts of failed ECS server %s not released", server.name)
        await self.store.update_ecs_server(server.id, status=model.FAIL, held_drive=0, held_server=0, held_run=0)

    async def release(self, server: EcsServer) -> None:
        """Stop and destroy the engine server, then the boot drive (once no image job holds it);
        what is already gone is fine."""
        user = server.owner
        if server.server is not None:
            try:
                await self.servers.destroy(user, server.server, manager=True)
            except MissingError:
                pass
            await self.store.update_ecs_server(server.id, server=None)
        if server.drive is not None:
            try:
                while True:  # an image job holds the drive: it ends on its own, soon
                    if (await self.drives.get(user, server.drive)).image_job is None:
                        break
                    await asyncio.sleep(self.config.ecs_poll_seconds)
                await self.drives.destroy(user, server.drive, manager=True)
            except MissingError:
                pass
            await self.store.update_ecs_server(server.id, drive=None)

    # -- delete -----------------------------------------------------------------------------------
    async def _delete(self, job: Job, progress: Progress) -> None:
        server = await self._row(job)
        try:
            await self.release(server)
        except ElasticError as e:
            raise JobFailed(f"delete of {server.name} failed: {e.message}") from None
        progress(90)
        await self.store.delete_ecs_server(server.id)
        log.info("ECS server %s deleted", server.name)

    # -- power ------------------------------------------------------------------------------------
    async def _power_on(self, job: Job, progress: Progress) -> None:
        server = await self._row(job)
        if server.server is None:
            raise JobFailed(f"server {server.name} has no machine to start")
        try:
            record = await self.servers.get(server.owner, server.server)
            if record.status != ACTIVE:  # already on: done at once
                await self._start(server)
            await self.store.update_ecs_server(server.id, ipv4=await self.ipv4(server.owner, server.server))
        except ElasticError as e:
            raise JobFailed(f"power on of {server.name} failed: {e.message}") from None

    async def _power_off(self, job: Job, progress: Progress) -> None:
        server = await self._row(job)
        if server.server is None:
            raise JobFailed(f"server {server.name} has no machine to stop")
        try:
            record = await self.servers.get(server.owner, server.server)
            if record.status == ACTIVE:  # a hard stop: the guest is not asked
                await self.servers.stop(server.owner, server.server)
        except ElasticError as e:
            raise JobFailed(f"power off of {server.name} failed: {e.message}") from None
