"""ECS servers, the request side (ECS.md §9): checks and quota admission at the request, a row and
an action, answered at once; the work is the action's (service/ecs_actions.py). A token confined
to a group (`scope`) sees and makes only that group's servers: every other one is missing."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from elastic_api.config import Config
from elastic_api.errors import BusyError, ElasticError, Invalid, MissingError
from elastic_api.hypervisor import Hypervisor
from elastic_api.model import ecs as model
from elastic_api.model.catalogue import CatalogueImage, Plan, Region
from elastic_api.service.scripts import ScriptService
from elastic_api.model.cloudinit import GuestSetup, check_password, check_script, hash_password
from elastic_api.model.ecs import EcsServer
from elastic_api.model.ecs_networks import NetworkRequest
from elastic_api.model.group import group_id, group_name
from elastic_api.model.job import (
    CONSOLE,
    CREATE_SERVER,
    DELETE_SERVER,
    DONE,
    POWER_OFF,
    POWER_ON,
    ActionParams,
    Job,
)
from elastic_api.model.server_record import ACTIVE
from elastic_api.model.snapshot import Snapshot, template_images
from elastic_api.model.support import ReservedRecord, SupportRecord, support_plan
from elastic_api.service.catalogue import CatalogueService
from elastic_api.service.ecs_actions import GiB, EcsActions
from elastic_api.service.ecs_networks import vlans_for
from elastic_api.service.groups import GroupService
from elastic_api.service.jobs import JobRunner
from elastic_api.service.locks import NodeLocks
from elastic_api.service.quotas import QuotaService
from elastic_api.service.servers import ServerService
from elastic_api.service.sshkeys import SshKeyService
from elastic_api.service.support import SupportService
from elastic_api.store import Store

log = logging.getLogger(__name__)

MAX_NOTES = 1024
RUNNING, STOPPED = "Running", "Stopped"  # current_status (ECS.md §7 Decision)


@dataclass(frozen=True)
class EcsCreate:
    """A valid create request, in typed terms."""

    plan: str
    image: str  # a slug or a standard image UUID
    location: str
    notes: str = ""
    group: str | None = None
    ssh_key: str | None = None
    isolate_from: tuple[str, ...] = ()
    support: str | None = None  # a support plan's code
    reserved_plan: str | int | None = None  # a reserved term: an id, or M{months}P{plan}
    # The root password in clear: hashed by create, never kept, logged or shown (no repr).
    password: str | None = field(default=None, repr=False)
    script: str | None = None  # an inline cloud script (user_customize as text)
    script_id: int | None = None  # a library script (user_customize as an id, service/scripts.py)
    script_env: str | None = None  # its NAME=value lines (user_customize_env)
    networks: tuple[NetworkRequest, ...] = ()  # NICs on the user's VLANs (model/ecs_networks.py)


@dataclass(frozen=True)
class EcsServerView:
    """A server as the dialect shows it: the row and what other rows say of it."""

    server: EcsServer
    group: str | None  # the group's name
    region: Region
    progress: int
    ipv4: str
    support: SupportRecord | None = None  # its current plan (not cancelled)
    reservations: tuple[ReservedRecord, ...] = ()
    last_restored: Snapshot | None = None  # the snapshot its last rollback restored
    parent: Snapshot | None = None  # that snapshot's parent, shown inside it


class EcsServerService:
    def __init__(
        self,
        config: Config,
        store: Store,
        hypervisor: Hypervisor,
        jobs: JobRunner,
        catalogue: CatalogueService,
        quotas: QuotaService,
        servers: ServerService,
        groups: GroupService,
        ssh_keys: SshKeyService,
        actions: EcsActions,
        support: SupportService,
        scripts: ScriptService,
    ) -> None:
        self.scripts = scripts
        self.config = config
        self.store = store
        self.hypervisor = hypervisor
        self.jobs = jobs
        self.catalogue = catalogue
        self.quotas = quotas
        self.servers = servers
        self.groups = groups
        self.ssh_keys = ssh_keys
        self.actions = actions
        # Support plans and reservations are kept by the server's ECS name: it exists from the
        # request on (the engine's UUID only once the action made it) and is never reused.
        self.support = support
        self.locks = NodeLocks(store, "ecs server")  # per server name: one action asked at a time

    # -- reading ----------------------------------------------------------------------------------
    async def visible(self, user: str, scope: str | None) -> list[EcsServer]:
        servers = await self.store.list_ecs_servers(user)
        if scope is None:
            return servers
        confined = group_id(scope)
        return [s for s in servers if s.group is not None and s.group == confined]

    async def get(self, user: str, scope: str | None, name: str) -> EcsServer:
        id_ = model.server_id(name)
        found = await self.store.get_ecs_server(user, id_) if id_ is not None else None
        if found is None or (scope is not None and found.group != group_id(scope)):
            raise MissingError(f"server not found: {name[:40]}")
        return found

    async def view(self, server: EcsServer) -> EcsServerView:
        progress = server.progress
        running = self.jobs.running_on(server.name)
        if server.status in model.CREATING and running is not None and running.kind == CREATE_SERVER:
            progress = max(progress, running.progress)
        ipv4 = server.ipv4
        if server.server is not None and server.status in (model.BOOTED, model.DELETING):
            try:
                record = await self.servers.get(server.owner, server.server)
                ipv4 = await self.actions.ipv4(server.owner, server.server) if record.status == ACTIVE else ipv4
            except MissingError:
                pass
        support = await self.support.support(server.owner, server.name)
        reservations = tuple(await self.support.reservations(server.owner, server.name))
        snapshots = {s.id: s for s in await self.store.list_snapshots(server.owner, server.id)}
        restored = next((s for s in snapshots.values() if s.last_restored), None)
        parent = snapshots.get(restored.parent) if restored is not None and restored.parent is not None else None
        return EcsServerView(
            server,
            group_name(server.group) if server.group is not None else None,
            self._region(server.location),
            progress,
            ipv4,
            support if support is not None and not support.cancelled else None,
            reservations,
            restored,
            parent,
        )

    def _region(self, location: str) -> Region:
        try:
            return self.catalogue.region(location)
        except Invalid:  # a region the operator has since removed: its code alone
            return Region(0, location, location)

    async def current_status(self, user: str, scope: str | None, name: str) -> str:
        """Running or Stopped, from the hypervisor (a server without a machine yet is Stopped)."""
        server = await self.get(user, scope, name)
        if server.server is None:
            return STOPPED
        record = await self.servers.get(user, server.server)
        if record.status != ACTIVE or record.host is None:
            return STOPPED
        try:
            running = await self.hypervisor.running(hosts=[record.host])
        except ElasticError:
            raise Invalid("Unable to retrieve server status") from None  # as Seeweb documents it
        return RUNNING if server.server in running else STOPPED

    async def isolations(self, user: str, scope: str | None, name: str) -> list[EcsServer]:
        server = await self.get(user, scope, name)
        return await self.store.ecs_partners(server.id)

    async def by_host(self, user: str, scope: str | None) -> dict[str, list[EcsServer]]:
        """The caller's servers on each host they run on now."""
        hosts = {r.server: r.host for r in await self.store.active_servers() if r.owner == user and r.host}
        found: dict[str, list[EcsServer]] = {}
        for server in await self.visible(user, scope):
            host = hosts.get(server.server or "")
            if host is not None:
                found.setdefault(host, []).append(server)
        return found

    # -- create -----------------------------------------------------------------------------------
    def _image(self, images: list[CatalogueImage], wanted: str) -> CatalogueImage:
        for image in images:
            if wanted in (image.slug, image.image.image):
                return image
        raise Invalid(f"unknown image: {wanted[:60]}")

    async def _check(self, user: str, scope: str | None, request: EcsCreate) -> tuple[Plan, CatalogueImage, int | None]:
        plan = self.catalogue.plan(request.plan)
        region = self.catalogue.region(request.location)
        if region not in self.catalogue.plan_regions(plan):
            raise Invalid(f"plan {plan.name} is not offered in {region.location}")
        # The catalogue's images, then the user's own templates (another user's: unknown).
        templates = template_images(await self.store.list_templates(user))
        image = self._image([*await self.catalogue.images(), *templates], request.image)
        if image.required_disk_gb > plan.disk_gb:
            raise Invalid(f"image {image.slug} needs {image.required_disk_gb} GB, plan {plan.name} has {plan.disk_gb}")
        if len(request.notes) > MAX_NOTES or any(ord(c) < 32 and c != "\t" for c in request.notes):
            raise Invalid(f"notes must be one line of at most {MAX_NOTES} characters")
        group = request.group if request.group is not None else scope
        if scope is not None and group != scope:
            raise MissingError(f"group not found: {group[:40] if group else ''}")
        group_number = None
        if group is not None:
            group_number = (await self.groups.by_name(user, group)).id
        if request.ssh_key is not None and not any(k.label == request.ssh_key for k in await self.ssh_keys.list(user)):
            raise Invalid(f"unknown ssh_key: {request.ssh_key[:60]}")
        if request.password is not None:
            check_password(request.password, self.config.max_guest_password)
        if request.script is not None:
            check_script(request.script, self.config.max_inline_script_bytes)
        if request.support is not None and support_plan(self.config.support_plans, request.support.strip()) is None:
            raise Invalid("Support code not found")
        if request.reserved_plan is not None:
            self.support.term(request.reserved_plan, plan.name)  # 400 or 404 before anything is made
        if len(request.isolate_from) > self.config.max_isolate_from:
            raise Invalid(f"isolate_from names at most {self.config.max_isolate_from} servers")
        return plan, image, group_number

    async def _setup(self, user: str, request: EcsCreate) -> GuestSetup:
        """What the guest's seed will give it: the key as it is now (a later change to the
        user's keys does not reach a create under way), the password hashed (CPU work: in a
        thread), the script."""
        keys = [k.key for k in await self.ssh_keys.list(user) if k.label == request.ssh_key]
        if request.ssh_key is not None and not keys:
            raise Invalid(f"unknown ssh_key: {request.ssh_key[:60]}")  # removed since the check
        password_hash = None
        if request.password is not None:
            password_hash = await asyncio.to_thread(hash_password, request.password)
        script: str | None = request.script
        env: tuple[tuple[str, str], ...] = ()
        if request.script_id is not None:
            plan = self.catalogue.plan(request.plan)
            script, env = await self.scripts.resolve(user, request.script_id, request.script_env, plan.windows)
        return GuestSetup(ssh_keys=tuple(keys[:1]), password_hash=password_hash, script=script, script_env=env)

    async def create(self, user: str, scope: str | None, request: EcsCreate) -> tuple[EcsServerView, Job]:
        plan, image, group = await self._check(user, scope, request)
        setup = await self._setup(user, request)
        vlans = await vlans_for(self.store, user, request.networks)
        partners = [(await self.get(user, scope, name)).id for name in dict.fromkeys(request.isolate_from)]
        cpu = plan.cpu * self.config.host_core_mhz
        row = EcsServer(
            0,
            user,
            plan.name,
            plan.cpu,
            plan.ram_mb,
            plan.disk_gb,
            cpu,
            image.image.image,
            image.slug,
            image.image.name,
            request.location,
            request.notes,
            group,
            request.ssh_key,
            model.BOOTING,
            model.NEW,
            0,
            None,
            None,
            "",
            time.time_ns(),
            setup,
            vlans=vlans,
        )
        # Admitted now against everything the user holds and every create not yet made; the row
        # holds the quota until its action makes the parts (ecs_actions.py hands it over).
        async with (
            self.quotas.servers(user, count=1, cpu=cpu, mem=plan.ram_mb),
            self.quotas.drives(user, count=1, size=plan.disk_gb * GiB),
        ):
            server = await self.store.insert_ecs_server(row, partners)
        if request.support is not None:
            await self.support.attach(user, server.name, request.support)
        if request.reserved_plan is not None:
            await self.support.reserve(user, server.name, server.plan, request.reserved_plan)
        job = await self._submit(server, CREATE_SERVER)
        return await self.view(server), job

    async def _submit(self, server: EcsServer, kind: str) -> Job:
        return self.jobs.live(await self.jobs.submit(Job(0, kind, server.owner, server.name, ActionParams())))

    # -- changing ---------------------------------------------------------------------------------
    async def update(self, user: str, scope: str | None, name: str, notes: str | None, group: str | None) -> None:
        """New notes and/or group (attach by name, `nogroup` detaches); allowed in every state."""
        server = await self.get(user, scope, name)
        changes: dict[str, object] = {}
        if notes is not None:
            if len(notes) > MAX_NOTES or any(ord(c) < 32 and c != "\t" for c in notes):
                raise Invalid(f"notes must be one line of at most {MAX_NOTES} characters")
            changes["notes"] = notes
        if group is not None:
            if scope is not None and group != scope:
                # A confined token cannot move a server out of its sight.
                raise MissingError(f"group not found: {group[:40]}")
            changes["group_id"] = None if group == model.NO_GROUP else (await self.groups.by_name(user, group)).id
        # The engine's server keeps the ECS name: notes are this dialect's alone.
        if changes and not await self.store.update_ecs_server(server.id, **changes):
            raise MissingError(f"server not found: {name[:40]}")

    async def _busy(self, server: EcsServer) -> None:
        if server.status in (*model.CREATING, model.DELETING):
            raise BusyError(f"server {server.name} is {server.status}")
        if any(job.unfinished for job in await self.store.jobs_of(server.owner, server.name)):
            raise BusyError(f"server {server.name} has an action in progress")

    async def delete(self, user: str, scope: str | None, name: str) -> Job:
        server = await self.get(user, scope, name)
        async with self.locks.hold(server.name):
            server = await self.get(user, scope, name)
            await self._busy(server)
            await self.support.ensure_deletable(server.name)  # a reserved server stays its term
            await self.store.update_ecs_server(server.id, status=model.DELETING)
            return await self._submit(server, DELETE_SERVER)

    async def act(self, user: str, scope: str | None, name: str, kind: str) -> Job:
        """A power action (a job), or `console`, done at once."""
        server = await self.get(user, scope, name)
        async with self.locks.hold(server.name):
            server = await self.get(user, scope, name)
            if kind == CONSOLE:  # console access itself is the other dialect's VNC: nothing to do
                return await self.store.add_finished_job(
                    Job(0, CONSOLE, user, server.name, ActionParams(), DONE, created=time.time_ns())
                )
            assert kind in (POWER_ON, POWER_OFF)
            await self._busy(server)
            if server.status != model.BOOTED:
                raise BusyError(f"server {server.name} is {server.status}")
            return await self._submit(server, kind)

    # -- support and reservations ---------------------------------------------------------------
    async def attach_support(
        self, user: str, scope: str | None, name: str, code: str
    ) -> tuple[EcsServer, SupportRecord]:
        server = await self.get(user, scope, name)
        return server, await self.support.attach(user, server.name, code)

    async def cancel_support(self, user: str, scope: str | None, name: str) -> None:
        server = await self.get(user, scope, name)
        await self.support.cancel(user, server.name)

    async def reserve(self, user: str, scope: str | None, name: str, reserved_plan: str | int) -> ReservedRecord:
        server = await self.get(user, scope, name)
        return await self.support.reserve(user, server.name, server.plan, reserved_plan)

    # -- actions ----------------------------------------------------------------------------------
    async def list_actions(self, user: str, scope: str | None, resource: str | None) -> list[Job]:
        names = None
        if scope is not None:
            names = [s.name for s in await self.visible(user, scope)]
        if resource is not None:
            names = [n for n in (names if names is not None else [resource]) if n == resource]
        return [self.jobs.live(job) for job in await self.store.ecs_actions(user, names)]

    async def get_action(self, user: str, scope: str | None, id_: int) -> Job:
        job = await self.store.ecs_action(user, id_)
        if job is None or (scope is not None and job.resource not in {s.name for s in await self.visible(user, scope)}):
            raise MissingError(f"action not found: {id_}")
        return self.jobs.live(job)

    # -- start-up -----------------------------------------------------------------------------------
    async def recover(self, *, alone: bool = True) -> None:
        """After the job runner took its jobs back: a server left Booting or Deleting without an
        action to finish it (a crash between its row and its job) gets one now, so no server stays
        in a passing status for good. Not `alone` (other nodes run): only rows older than a job
        lease, as a live node's create adds its job within the same request."""
        settled = time.time_ns() - self.config.job_lease_seconds * 1_000_000_000
        for server in await self.store.list_ecs_servers(None):
            if server.status not in (*model.CREATING, model.DELETING) or (not alone and server.created > settled):
                continue
            jobs = await self.store.jobs_of(server.owner, server.name)
            if any(job.unfinished for job in jobs):
                continue
            kind = CREATE_SERVER if server.status in model.CREATING else DELETE_SERVER
            last = next((job for job in reversed(jobs) if job.kind == kind), None)
            if kind == CREATE_SERVER and last is not None:
                # Its create ended without marking the row (stopped in between): failed it is.
                await self.actions.give_up(server, last.error or "interrupted")
                continue
            log.warning("ECS server %s was left %s without an action: asking one", server.name, server.status)
            await self._submit(server, kind)
