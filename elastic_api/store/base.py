"""The metadata store's interface, one Protocol per concept; `Store` is all of them at once.

What every implementation promises (tests/contract/ holds each one to it):

- Every write is one transaction: a concurrent caller sees all of it or none of it, and it is
  durable when the call returns. A write that raises changed nothing. A caller cancelled while
  waiting may still have had its write committed (or refused): cancelling does not undo.
- Every read sees one consistent state: no write lands between the statements it runs.
- Every object query takes the user it acts for, and an object that does not exist and one the
  user may not reach are answered alike (None, False, an empty list, or nothing done), so no
  answer tells a stranger that an ID exists. The "maintenance" queries, for start-up sweeps and
  hypervisor events that name no user, are the only ones that see every user's objects.
- A write on a full metadata disk raises FullError; a destroy (the way a user frees space) may
  use room the store keeps in reserve for it.
- A page (`limit`, `marker`) is ordered by creation time, then ID, and starts after `marker`; a
  marker the user cannot see is a UsageError whether it exists or not; `limit` None is no limit.
- Inserting an object whose ID exists, or one whose owner is not a user, is refused with the
  engine's own integrity error: IDs are new UUIDs and owners are authenticated users, so only a
  bug gets there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from elastic_api.model.audit import AuditEntry, AuditQuery
from elastic_api.model.drive import Drive, IoCounts
from elastic_api.model.image import StandardImage
from elastic_api.model.job import Job
from elastic_api.model.metrics import MetricSample
from elastic_api.model.quota import Quota, Usage
from elastic_api.model.resource import Lease, Resource
from elastic_api.model.server_record import Claim, ServerRecord
from elastic_api.store.base_ecs import (
    CatalogueStore,
    EcsServerStore,
    CloudScriptStore,
    GroupStore,
    SnapshotStore,
    SshKeyStore,
    SupportStore,
    TemplateStore,
    TokenStore,
)


class UserStore(Protocol):
    async def create_user(self, user: str, name: str, secret_hash: bytes, created: int) -> None:
        """Add a user, in one transaction."""

    async def user_secret_hash(self, user: str) -> bytes | None:
        """The user's secret hash; None when there is no such user. The one query without an
        owner to scope by: it establishes who the owner is."""


class QuotaStore(Protocol):
    """A user's own limits (a key without one follows the configured default; a limit of None is
    unlimited), and what the user holds now."""

    async def quota_overrides(self, user: str) -> dict[str, int | None]:
        """The user's own limits by key; {} when there are none or there is no such user."""

    async def set_quota_overrides(self, user: str, values: dict[str, int | None], cleared: list[str]) -> bool:
        """Set `values` and drop the `cleared` keys back to the default, all in one transaction
        (a key in both ends up cleared); False, and nothing changed, when there is no such user."""

    async def usage(self, user: str) -> Usage:
        """What the user holds, from one consistent state: drives (count, bytes), servers
        (count), active servers' cpu and mem, IP resources. All zero for an unknown user."""

    async def quota_state(self, user: str) -> tuple[dict[str, int | None], Usage]:
        """quota_overrides and usage read together from the same state: one wait on the store
        instead of two."""

    async def hold_quota(self, user: str, adding: Usage, defaults: Quota, now: int, until: int) -> int:
        """Admit `adding` and hold it for the user until release_quota or `until` (ns), in one
        transaction: what the user holds (usage) plus the holds still live at `now` plus `adding`
        must be within the user's limits (`defaults` with the user's own overrides), else
        QuotaExceeded and nothing held. Admissions for one user run one after the other, whichever
        node sharing the store makes them (a SQLite file has one: its holds may live in memory):
        two cannot both see room for one. The hold's ID."""

    async def release_quota(self, hold: int) -> None:
        """Drop a hold (its command made what it held, or failed); nothing when it is gone."""


class DriveStore(Protocol):
    """Drives. Visible means owned, or shared with the user through `readers` (by ID or as all
    users); only the owner may change or destroy a drive."""

    async def insert_drive(self, drive: Drive) -> None:
        """Add the drive and its readers in one transaction. Its I/O counters, image job and
        claims start empty whatever `drive` says."""

    async def get_drive(self, user: str, drive: str) -> Drive | None:
        """The drive, with its readers, the active servers that claim it, its pending image job
        (running, else the first queued) and its last image job's error (see last_error in
        sqlite/jobs.py), if the user may see it; None when it is missing or not visible to the user."""

    async def list_drives(self, user: str, limit: int | None, marker: str | None) -> list[Drive]:
        """One page of the drives the user may see (a marker must be one of them)."""

    async def list_drive_ids(self, user: str, limit: int | None, marker: str | None) -> list[str]:
        """The page list_drives would give, as IDs alone: what `/drives/list` shows."""

    async def update_drive(self, user: str, drive: Drive) -> bool:
        """Replace the owner's drive's name, size, claim type, tags, avoid list, user keys and
        readers in one transaction (owner, format, encryption, tier, creation time, I/O
        counters, wrapped key and jobs never change). False, and nothing changed, when the
        drive is missing or not the user's own (a reader may not change it)."""

    async def delete_drive(self, user: str, drive: str) -> bool:
        """Remove the owner's drive, with its readers and all its jobs, in one transaction;
        False, and nothing changed, when it is missing or not the user's own. A drive an active
        server claims is refused with the engine's integrity error and stays (callers check
        `claimed` first). May use the full-disk reserve."""

    async def count_drive_io(
        self,
        user: str,
        drive: str,
        *,
        read_bytes: int = 0,
        read_requests: int = 0,
        write_bytes: int = 0,
        write_requests: int = 0,
    ) -> None:
        """Add to the counters of a drive the user may see, in one statement: counts added at
        the same time all add up. Nothing happens when it is missing or not visible."""

    async def add_drive_io(self, counts: Mapping[str, IoCounts]) -> None:
        """Add a batch of counts (drive UUID → counts, already authorised when they were made)
        to the drives' counters. Atomic: the whole batch is stored or none of it (so a caller
        may keep a failed batch and retry it without counting twice). Drives that no longer
        exist are skipped."""

    # Maintenance.
    async def all_drive_ids(self) -> set[str]:
        """Every drive's UUID regardless of owner (the start-up sweep of orphaned volumes)."""

    async def some_wrapped_key(self) -> tuple[str, bytes] | None:
        """The oldest encrypted drive's UUID and wrapped key (None when there is none): at
        start-up, to know whether a master key is needed and to check that it is the right one."""


class ImageStore(Protocol):
    """Standard images: a public, read-only library with no owner to scope by."""

    async def insert_image(self, image: StandardImage) -> None:
        """Add an image to the library, in one transaction."""

    async def get_image(self, image: str) -> StandardImage | None:
        """The image; None when there is no such image."""

    async def list_images(self, limit: int | None, marker: str | None) -> list[StandardImage]:
        """One page of the library (a marker must be an image in it)."""

    async def delete_image(self, image: str) -> bool:
        """Remove the image; False when there was none."""


class JobStore(Protocol):
    """Jobs: background work on one resource, run in order per resource under a node's lease.
    The runner (service/jobs.py) checks who may act on a resource before it adds a job; these
    calls take job IDs, never a user, except jobs_of. A job's status only moves queued →
    running → done or failed (or back to queued when its runner is gone), and a change made
    "by holder" happens only while the job is running under holder's lease."""

    async def add_job(self, job: Job) -> Job:
        """Store a new job; the job with its ID."""

    async def next_job(self, resource: str) -> Job | None:
        """The resource's first unfinished job (running, else the first queued), or None."""

    async def claim_job(self, job: int, holder: str, now: int, expires: int) -> Job | None:
        """Start a queued job under holder's lease, if it is still queued and first on its
        resource with none running there; the running job, or None."""

    async def renew_jobs(self, holder: str, jobs: list[int], expires: int) -> list[int]:
        """Extend holder's leases on these running jobs; the IDs holder still holds."""

    async def job_progress(self, job: int, holder: str, progress: int) -> None: ...

    async def finish_job(self, job: int, holder: str | None, status: str, error: str | None, finished: int) -> bool:
        """End a running job that holder holds (done or failed); False when it is not."""

    async def requeue_job(self, job: int, holder: str | None) -> bool:
        """Put a running job that holder held back in the queue, in its place; False when not."""

    async def jobs_of(self, owner: str, resource: str) -> list[Job]:
        """The owner's jobs on the resource, oldest first (finished ones too, while kept)."""

    async def unfinished_jobs(self) -> list[Job]:
        """Every queued or running job of every owner, by ID: for start-up and the heartbeat."""


class CoordinationStore(Protocol):
    """What keeps the nodes sharing one store out of each other's way where a critical section
    spans more than one store call (a guest's start: placement, claims, the domain's creation),
    and the names the nodes take on job leases."""

    # Whether other processes may share the store (PostgreSQL: yes; SQLite: one process), so a
    # caller can skip a lock that only other nodes make necessary.
    several_nodes: bool

    def node_lock(self, *key: str) -> AbstractAsyncContextManager[None]:
        """Hold a lock on `key` (its parts joined) until the block ends, against every task of
        this process and of every other process sharing the store: the holders of one key run
        one after the other, in no promised order. A holder's process that dies releases its
        locks (PostgreSQL ends its session). Locks on different keys never wait for each other
        (on PostgreSQL they may, rarely, when two keys hash alike); taking two at once must
        follow one order everywhere. On SQLite, which one process uses, an in-process lock."""

    async def claim_node(self, node: str) -> bool:
        """Take the name `node` for this store object while it is open: False when a live
        process sharing the store holds it already (two nodes under one name would each take
        the other's jobs for its own). A process that dies loses its names with its session,
        so a node restarted under its name gets it back at once. On SQLite: True (one process)
        unless this store object holds the name already."""

    def join_nodes(self) -> AbstractAsyncContextManager[bool]:
        """Join the nodes sharing the store, for as long as this store object stays open. The
        block's value is True when no other node had joined, and then none can join until the
        block ends: what only a lone node may do (remove pool files no row names, which another
        node may be making) is safe inside it. False when other nodes are running. On SQLite
        (one process): True."""


class ServerStore(Protocol):
    """Servers: owned only (servers are never shared). An active server has a host, a start
    time and claims on its drives; a stopped one has none of them."""

    async def insert_server(self, record: ServerRecord) -> None:
        """Add a server, in one transaction, with the record's configuration, creation time and
        status; it has no host, start time or claims (activate_server gives those)."""

    async def get_server(self, user: str, server: str) -> ServerRecord | None:
        """The user's server; None when it is missing or another user's."""

    async def list_servers(self, user: str, limit: int | None, marker: str | None) -> list[ServerRecord]:
        """One page of the user's servers (a marker must be one of them)."""

    async def update_server_config(self, user: str, record: ServerRecord) -> bool:
        """Replace the configuration of the user's server (status, host, start time and claims
        stay as they are); False, and nothing changed, when it is missing or another user's."""

    async def delete_server(self, user: str, server: str) -> bool:
        """Remove the user's server, active or not, with its claims and leases, in one
        transaction; False, and nothing changed, when it is missing or another user's. May use
        the full-disk reserve."""

    async def activate_server(self, user: str, server: str, host: str, started: int, claims: list[Claim]) -> None:
        """Claim the drives and mark the user's stopped server active on `host`, all in one
        transaction, or raise BusyError and change nothing: when a drive is gone or being
        imaged, when a drive whose claim type is exclusive is claimed by another server, and
        when the server is already active, missing or another user's. Whether the user may use
        each drive is the caller's check. Two activations that race for one exclusive drive:
        exactly one wins."""

    async def deactivate_server(self, user: str, server: str) -> bool:
        """Release the user's server's claims and leases and mark it stopped, in one transaction;
        False when it was not active. A server that is missing or another user's: False, and
        nothing changed."""

    # Maintenance, for start-up reconciliation and hypervisor events that name no user.
    async def active_servers(self) -> list[ServerRecord]:
        """Every active server, whoever owns it, in no particular order."""

    async def server_owner(self, server: str) -> str | None:
        """Who owns a server a hypervisor event names; None when there is no such server."""

    async def all_servers(self) -> list[ServerRecord]:
        """Every server, whoever owns it, active or not, by creation time then ID (what this
        installation owns on a libvirtd it may share)."""


class ResourceStore(Protocol):
    """Resources (static IPs and VLANs): owned only. An IP resource's ID is its address; an
    address is never both an IP resource and held by an automatic lease."""

    async def insert_resource(self, resource: Resource) -> None:
        """Add a resource, in one transaction; an address a NIC holds is refused with the
        engine's integrity error (callers take IPs from insert_ip_from_pool)."""

    async def insert_ip_from_pool(self, resource: Resource, first: str, last: str) -> Resource | None:
        """Add `resource` as an IP resource whose ID is the lowest address of first-last that is
        neither an IP resource nor held by a NIC; the pick and the insert are one transaction,
        so two callers never get one address. None, and nothing changed, when none is free."""

    async def get_resource(self, user: str, type_: str, resource: str) -> Resource | None:
        """The user's resource of that type; None when it is missing, another user's or of
        another type."""

    async def list_resources(
        self, user: str, type_: str | None, limit: int | None, marker: str | None
    ) -> list[Resource]:
        """One page of the user's resources of `type_` (None: of both types, in one order); a
        marker must be one of them."""

    async def update_resource(self, user: str, resource: Resource) -> bool:
        """Replace the name, tags and user keys of the user's resource; False, and nothing
        changed, when it is missing, another user's or of another type."""

    async def delete_resource(self, user: str, type_: str, resource: str) -> bool:
        """Remove the user's resource, in one transaction; False when it is missing, another
        user's or of another type. BusyError, and nothing changed, while one of the user's
        servers (active or stopped) names it in its configuration or a NIC holds it. May use the
        full-disk reserve."""

    # Maintenance.
    async def all_vlan_ids(self) -> set[str]:
        """Every VLAN's UUID regardless of owner (start-up removes other VLAN networks)."""


class LeaseStore(Protocol):
    """The addresses active servers' NICs hold: each address by one NIC at most. Leases go
    with deactivate_server and delete_server too."""

    async def lease_ips(
        self,
        user: str,
        server: str,
        static: list[tuple[int, str, str]],
        auto: list[tuple[int, str]],
        first: str,
        last: str,
    ) -> list[Lease]:
        """Give the user's server its addresses in one transaction, or none of them: first
        whatever the server held before is given back, then each (nic, mac, ip) of `static` gets
        its IP resource and each (nic, mac) of `auto` the lowest free address of first-last (not
        an IP resource, not held). MissingError for a server or an IP that is missing or another
        user's, BusyError for an IP another server holds, FullError when the pool has no address
        left; on each of them the server keeps the leases it had."""

    async def server_leases(self, user: str, server: str) -> list[Lease]:
        """The addresses the user's server holds, by NIC; [] when it is missing or another
        user's."""

    async def release_leases(self, user: str, server: str) -> None:
        """Give back every address the user's server holds, in one transaction; nothing happens
        when it is missing or another user's."""

    # Maintenance, for start-up reconciliation.
    async def active_leases(self) -> list[tuple[str, Lease]]:
        """(host, lease) for every address an active server holds, whoever owns it, by address."""

    async def drop_stale_leases(self) -> int:
        """Forget the addresses of servers that are not active, in one transaction; how many went."""


class AuditStore(Protocol):
    """The audit trail. Entries are never changed; they go only when older than the retention."""

    async def insert_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Add the entries (ids given by the store, in order) all in one transaction: a group
        from the service's queue commits whole or not at all."""

    async def audit_page(self, user: str, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
        """How many of the user's entries match `query.target` and `query.group` (paging aside) and one page of
        them, newest first, both read from one consistent state. `query.before` names an entry
        of the user's matching the target; another one is a UsageError, whether it exists or not."""

    async def get_audit(self, user: str, id_: int) -> AuditEntry | None:
        """The user's entry; None when there is none or it is another user's."""

    async def prune_audit(self, before: int) -> int:
        """Maintenance, every user's: drop the entries made before `before` (ns), in one
        transaction; how many went."""


class MetricsStore(Protocol):
    """Servers' sampled counters: owned through their server, gone with it (deleting a server
    deletes its samples in the same transaction)."""

    async def add_samples(self, samples: list[MetricSample]) -> int:
        """Keep the samples, all in one transaction; how many were kept. A sample of a server
        that no longer exists (deleted since it was read) is dropped, not an error, and so is a
        second sample of a server at the same time. Maintenance: names no user."""

    async def server_samples(self, user: str, server: str, since: float) -> list[MetricSample]:
        """The user's server's samples taken at `since` or later, oldest first, from one
        consistent state; [] when there are none, or the server is missing or another user's."""

    async def prune_samples(self, before: float) -> int:
        """Drop every server's samples taken before `before`, in one transaction; how many went.
        Maintenance: names no user. May use the full-disk reserve (it frees space)."""


class Store(
    UserStore,
    QuotaStore,
    DriveStore,
    ImageStore,
    JobStore,
    CoordinationStore,
    ServerStore,
    ResourceStore,
    LeaseStore,
    TokenStore,
    SshKeyStore,
    GroupStore,
    CatalogueStore,
    MetricsStore,
    AuditStore,
    SupportStore,
    EcsServerStore,
    CloudScriptStore,
    SnapshotStore,
    TemplateStore,
    Protocol,
):
    """The whole metadata store."""

    async def open(self) -> None:
        """Open the store, creating it or bringing its schema up to date: rows written by an
        older version load; a store newer than this program is refused."""

    async def close(self) -> None:
        """Close the store once no call is under way; it cannot be opened again."""


# (kind, seconds): how long one call on the store took, "read" or "write" (queueing included).
StoreTimer = Callable[[str, float], None]


@runtime_checkable
class Timed(Protocol):
    """A store that reports how long its calls take (the operators' metrics set `timer`)."""

    timer: StoreTimer | None
