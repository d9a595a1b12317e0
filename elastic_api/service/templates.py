"""Templates (ECS.md §3 `/templates`): a user's image made from an ECS server's boot drive.

`create_template` copies the drive's guest bytes, from the server **stopped** (its drive as it is)
or from one of its **snapshots** (what the drive held then, consistent whatever the guest does
now: a snapshot's clusters are never rewritten, so it is read even under a running guest),
into a read-only raw base in the pool, the same shape as a standard image's base: a server
created from the template gets a copy-on-write overlay of it (storage/bases.py). A template
asked of a running server without a snapshot is a 409 ("power it off, or name a snapshot"):
a copy of a disk being written would not be one the guest could boot from reliably.

A template is its owner's only: `image` on create names it (by `ei` name or UUID) for its owner,
and anyone else's is an unknown image (400). DELETE is refused (409) while a drive overlays it
or a create from it is not yet made; else a `delete_template` action removes base and row.
"""

from __future__ import annotations

import logging
import time

from elastic_api.config import Config
from elastic_api.errors import BusyError, ElasticError, Invalid, MissingError
from elastic_api.model import ecs as ecs_model
from elastic_api.model.ids import new_id
from elastic_api.model.job import CREATE_TEMPLATE, DELETE_TEMPLATE, Job, TemplateParams
from elastic_api.model.snapshot import (
    CREATED,
    CREATING,
    DELETING,
    FAILED,
    Template,
    check_text,
    snapshot_tag,
    template_id,
)
from elastic_api.service.drives import DriveService
from elastic_api.service.ecs_servers import EcsServerService
from elastic_api.service.ecs_snapshots import SnapshotService
from elastic_api.service.jobs import JobFailed, JobRunner, Progress
from elastic_api.storage import Storage
from elastic_api.store import Store

log = logging.getLogger(__name__)


class TemplateService:
    def __init__(
        self,
        config: Config,
        store: Store,
        storage: Storage,
        jobs: JobRunner,
        drives: DriveService,
        ecs: EcsServerService,
        snapshots: SnapshotService,
    ) -> None:
        self.config = config
        self.store = store
        self.storage = storage
        self.jobs = jobs
        self.drives = drives
        self.ecs = ecs
        self.snapshots = snapshots
        slots = config.max_ecs_actions
        jobs.register(CREATE_TEMPLATE, self._create, concurrency=slots, idempotent=True)
        jobs.register(DELETE_TEMPLATE, self._delete, concurrency=slots, idempotent=True)

    # -- reading --------------------------------------------------------------------------------
    async def list(self, user: str) -> list[Template]:
        return await self.store.list_templates(user)

    async def get(self, user: str, wanted: str) -> Template:
        id_ = template_id(wanted)
        found = await self.store.get_template(user, id_) if id_ is not None else None
        if found is None:
            raise MissingError(f"template not found: {wanted[:40]}")
        return found

    # -- changing -------------------------------------------------------------------------------
    async def create(
        self,
        user: str,
        scope: str | None,
        server_name: str | None,
        snapshot_id: int | None,
        description: str,
        notes: str,
    ) -> tuple[Template, Job]:
        if (server_name is None) == (snapshot_id is None):
            raise Invalid("give exactly one of server and snapshot")
        for field, text in (("description", description), ("notes", notes)):
            if (why := check_text(field, text)) is not None:
                raise Invalid(why)
        if snapshot_id is not None:
            snapshot = await self.store.get_snapshot(user, snapshot_id)
            server = await self.store.ecs_server_by_id(snapshot.server) if snapshot is not None else None
            if snapshot is None or server is None:
                raise Invalid(f"snapshot not found: {snapshot_id}")  # bad input, as ECS.md §6's server
            server_name = server.name
        assert server_name is not None
        try:
            server = await self.ecs.get(user, scope, server_name)
        except MissingError:
            raise Invalid(f"server not found: {server_name[:40]}") from None  # ECS.md §6: a 400 here
        async with self.ecs.locks.hold(server.name):
            server = await self.ecs.get(user, scope, server.name)
            await self.snapshots.ready(server)
            if snapshot_id is not None:
                snapshot = await self.store.get_snapshot(user, snapshot_id)
                if snapshot is None or snapshot.status != CREATED:
                    raise BusyError(f"snapshot {snapshot_id} is not made")
            elif await self.snapshots.running(server):
                raise BusyError(
                    f"server {server.name} is running: power it off, or make the template from a snapshot of it"
                )
            template = await self.store.insert_template(
                Template(
                    0,
                    user,
                    new_id(),
                    description,
                    notes,
                    CREATING,
                    server.name,
                    snapshot_id,
                    0,
                    time.time_ns(),
                    server.so,
                ),
                self.config.max_templates_per_user,
            )
            job = await self.jobs.submit(
                Job(0, CREATE_TEMPLATE, user, server.name, TemplateParams(template.id, snapshot_id))
            )
        return template, self.jobs.live(job)

    async def update(self, user: str, wanted: str, description: str | None, notes: str | None) -> Template:
        template = await self.get(user, wanted)
        changes = {}
        for field, text in (("description", description), ("notes", notes)):
            if text is not None:
                if (why := check_text(field, text)) is not None:
                    raise Invalid(why)
                changes[field] = text
        if changes and not await self.store.update_template(template.id, **changes):
            raise MissingError(f"template not found: {wanted[:40]}")
        return await self.get(user, template.name)

    async def delete(self, user: str, wanted: str) -> Job:
        template = await self.get(user, wanted)
        async with self.ecs.locks.hold(template.name):
            template = await self.get(user, wanted)
            if template.status in (CREATING, DELETING):
                raise BusyError(
                    f"template {template.name} is {'being made' if template.status == CREATING else 'being deleted'}"
                )
            await self._check_unused(template)
            await self.store.update_template(template.id, status=DELETING)
            job = await self.jobs.submit(Job(0, DELETE_TEMPLATE, user, template.name, TemplateParams(template.id)))
        return self.jobs.live(job)

    async def _check_unused(self, template: Template) -> None:
        users = await self.storage.image_users(template.uuid)
        if users:
            raise BusyError(f"template {template.name} is in use by {len(users)} drive(s)")
        for server in await self.store.list_ecs_servers(template.owner):
            if server.image == template.uuid and server.status == ecs_model.BOOTING:
                raise BusyError(f"template {template.name} is in use by {server.name}, being created")

    # -- the jobs -------------------------------------------------------------------------------
    async def _template(self, job: Job) -> Template:
        params = job.params
        assert isinstance(params, TemplateParams)
        template = await self.store.get_template(job.owner, params.template)
        if template is None:
            raise JobFailed(f"template {params.template} no longer exists")
        return template

    async def _create(self, job: Job, progress: Progress) -> None:
        template = await self._template(job)
        if template.status != CREATING:
            return  # a re-run after it was made
        try:
            id_ = ecs_model.server_id(job.resource)
            server = await self.store.ecs_server_by_id(id_) if id_ is not None else None
            if server is None or server.owner != job.owner or server.drive is None:
                raise JobFailed(f"server {job.resource} no longer exists")
            if template.snapshot is None and await self.snapshots.running(server):
                raise JobFailed(f"server {server.name} was started before its template was made")
            drive = await self.drives.owned(server.owner, server.drive)
            if template.snapshot is None:
                self.drives.check_unclaimed(drive)
            progress(5)
            tag = None if template.snapshot is None else snapshot_tag(template.snapshot)
            size = await self.storage.make_template(self.drives.volume(drive), template.uuid, tag)
        except ElasticError as e:
            await self.store.update_template(template.id, status=FAILED)
            raise JobFailed(f"template from {job.resource} failed: {e.message}") from None
        except JobFailed:
            await self.store.update_template(template.id, status=FAILED)
            raise
        await self.store.update_template(template.id, status=CREATED, size=size)
        log.info("template %s made from %s (%d bytes)", template.name, job.resource, size)

    async def _delete(self, job: Job, progress: Progress) -> None:
        template = await self._template(job)
        try:
            await self.storage.remove_template(template.uuid)
        except ElasticError as e:
            # A create that overlaid it since the request: it stays, made.
            await self.store.update_template(template.id, status=CREATED)
            raise JobFailed(f"delete of {template.name} failed: {e.message}") from None
        await self.store.delete_template(template.id)
        log.info("template %s deleted", template.name)
