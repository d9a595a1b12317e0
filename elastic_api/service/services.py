"""The services one engine is made of, built once and shared by every dialect."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from elastic_api.config import Config
from elastic_api.hypervisor import Hypervisor
from elastic_api.service.audit import AuditService
from elastic_api.service.catalogue import CatalogueService
from elastic_api.service.drives import DriveService
from elastic_api.service.ecs_actions import EcsActions
from elastic_api.service.ecs_servers import EcsServerService
from elastic_api.service.ecs_snapshots import SnapshotService
from elastic_api.service.groups import GroupService
from elastic_api.service.imaging import ImagingService
from elastic_api.service.jobs import JobRunner
from elastic_api.service.metrics import MetricsService
from elastic_api.service.quotas import QuotaService
from elastic_api.service.resources import ResourceService
from elastic_api.service.scripts import ScriptService
from elastic_api.service.servers import ServerService
from elastic_api.service.sshkeys import SshKeyService
from elastic_api.service.support import SupportService
from elastic_api.service.templates import TemplateService
from elastic_api.service.tokens import TokenService
from elastic_api.service.users import UserService
from elastic_api.storage import Storage
from elastic_api.store import Store


def lease_holder(installation: str, node_name: str) -> str:
    """This node's name on the job leases it takes: the installation's ID (every node of an
    installation shares it, as they share its guests) and the node's own name, the host's when
    the config gives none. The same after a restart, so a node takes its own jobs back at once;
    unique among live nodes, which start-up checks (store.claim_node)."""
    return f"{installation}/{node_name or socket.gethostname()}"


@dataclass
class Services:
    users: UserService
    drives: DriveService
    imaging: ImagingService
    jobs: JobRunner
    servers: ServerService
    quotas: QuotaService
    resources: ResourceService
    tokens: TokenService
    catalogue: CatalogueService
    ssh_keys: SshKeyService
    groups: GroupService
    ecs: EcsServerService
    metrics: MetricsService
    audit: AuditService
    support: SupportService
    scripts: ScriptService
    snapshots: SnapshotService
    templates: TemplateService


def build_services(config: Config, store: Store, storage: Storage, hypervisor: Hypervisor) -> Services:
    quotas = QuotaService(config, store)
    jobs = JobRunner(
        store,
        lease_holder(hypervisor.installation, config.node_name),
        lease_seconds=config.job_lease_seconds,
        heartbeat_seconds=config.job_heartbeat_seconds,
        progress_seconds=config.job_progress_seconds,
    )
    drives = DriveService(config, store, storage, quotas=quotas, jobs=jobs)
    resources = ResourceService(config, store, hypervisor, quotas=quotas)
    users = UserService(store, cache_seconds=config.auth_cache_seconds, cache_users=config.auth_cache_users)
    imaging = ImagingService(config, store, storage, drives, jobs)
    servers = ServerService(config, store, hypervisor, drives, resources)
    catalogue = CatalogueService(config, store, hypervisor)
    ssh_keys = SshKeyService(store, max_per_user=config.max_ssh_keys_per_user)
    groups = GroupService(store, max_per_user=config.max_groups_per_user)
    actions = EcsActions(config, store, jobs, catalogue, drives, imaging, servers)
    scripts = ScriptService(config, store)
    support = SupportService(
        store, support_plans=config.support_plans, reserved_terms=config.reserved_plans, plans=config.plans
    )
    ecs = EcsServerService(
        config, store, hypervisor, jobs, catalogue, quotas, servers, groups, ssh_keys, actions, support, scripts
    )
    snapshots = SnapshotService(config, store, storage, jobs, drives, servers, ecs, actions)
    return Services(
        users=users,
        drives=drives,
        imaging=imaging,
        jobs=jobs,
        servers=servers,
        quotas=quotas,
        resources=resources,
        tokens=TokenService(store, users, config.token_key_path, login_seconds=config.login_token_seconds),
        catalogue=catalogue,
        ssh_keys=ssh_keys,
        groups=groups,
        ecs=ecs,
        metrics=MetricsService(store, hypervisor, interval=config.metrics_interval, retention=config.metrics_retention),
        audit=AuditService(
            store,
            retention=config.audit_retention,
            batch=config.audit_batch,
            queue=config.audit_queue,
            flush_seconds=config.audit_flush_seconds,
        ),
        support=support,
        scripts=scripts,
        snapshots=snapshots,
        templates=TemplateService(config, store, storage, jobs, drives, ecs, snapshots),
    )
