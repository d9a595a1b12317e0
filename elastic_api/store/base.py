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

from typing import Protocol

from elastic_api.model.drive import Drive
from elastic_api.model.image import ImageJob, StandardImage
from elastic_api.model.quota import Usage
from elastic_api.model.resource import Lease, Resource
from elastic_api.model.server_record import Claim, ServerRecord


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

    async def set_quota_overrides(self, user: str, values: dict[str, int | None],
                                  cleared: list[str]) -> bool:
        """Set `values` and drop the `cleared` keys back to the default, all in one transaction
        (a key in both ends up cleared); False, and nothing changed, when there is no such user."""

    async def usage(self, user: str) -> Usage:
        """What the user holds, from one consistent state: drives (count, bytes), servers
        (count), active servers' cpu and mem, IP resources. All zero for an unknown user."""

    async def quota_state(self, user: str) -> tuple[dict[str, int | None], Usage]:
        """quota_overrides and usage read together from the same state: one wait on the store
        instead of two."""


class DriveStore(Protocol):
    """Drives. Visible means owned, or shared with the user through `readers` (by ID or as all
    users); only the owner may change or destroy a drive."""

    async def insert_drive(self, drive: Drive) -> None:
        """Add the drive and its readers in one transaction. Its I/O counters, imaging state
        and claims start empty whatever `drive` says."""

    async def get_drive(self, user: str, drive: str) -> Drive | None:
        """The drive, with its readers and the active servers that claim it, if the user may
        see it; None when it is missing or not visible to the user."""

    async def list_drives(self, user: str, limit: int | None, marker: str | None) -> list[Drive]:
        """One page of the drives the user may see (a marker must be one of them)."""

    async def list_drive_ids(self, user: str, limit: int | None, marker: str | None) -> list[str]:
        """The page list_drives would give, as IDs alone: what `/drives/list` shows."""

    async def update_drive(self, user: str, drive: Drive) -> bool:
        """Replace the owner's drive's name, size, claim type, tags, avoid list, user keys,
        imaging state and readers in one transaction (owner, format, encryption, tier, creation
        time, I/O counters and wrapped key never change). False, and nothing changed, when the
        drive is missing or not the user's own (a reader may not change it)."""

    async def delete_drive(self, user: str, drive: str) -> bool:
        """Remove the owner's drive, with its readers and queued image jobs, in one transaction;
        False, and nothing changed, when it is missing or not the user's own. A drive an active
        server claims is refused with the engine's integrity error and stays (callers check
        `claimed` first). May use the full-disk reserve."""

    async def count_drive_io(self, user: str, drive: str, *, read_bytes: int = 0, read_requests: int = 0,
                             write_bytes: int = 0, write_requests: int = 0) -> None:
        """Add to the counters of a drive the user may see, in one statement: counts added at
        the same time all add up. Nothing happens when it is missing or not visible."""

    async def set_imaging(self, user: str, drive: str, imaging: str | None, error: str | None) -> None:
        """Set the owner's drive's imaging progress and error in one transaction; nothing
        happens when the drive is missing or not the user's own."""

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


class ImageJobStore(Protocol):
    """Image jobs: copies into a drive, queued in order per drive; only its owner may add one."""

    async def add_image_job(self, user: str, drive: str, source: str, conversion: str) -> ImageJob | None:
        """Queue a job on the owner's drive and, in the same transaction, mark the drive
        `queued` unless it already shows progress, and clear its last imaging error. Job
        numbers only grow (never reused). None, and nothing changed, when the drive is missing
        or not the user's own. The source is not checked here."""

    async def image_jobs(self, user: str, drive: str) -> list[ImageJob]:
        """The jobs queued on the owner's drive, first first; [] when the drive is missing or
        not the user's own."""

    async def finish_image_job(self, user: str, job: int, imaging: str | None, error: str | None) -> None:
        """Remove a done job and set its drive's imaging progress and error, in one transaction:
        no one sees the job gone and the drive's state not yet set. Nothing happens when the job
        is missing or not the user's."""

    # Maintenance.
    async def all_image_jobs(self) -> list[ImageJob]:
        """Every queued job regardless of owner, in order (resumed at start-up)."""


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

    async def activate_server(self, user: str, server: str, host: str, started: int,
                              claims: list[Claim]) -> None:
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

    async def list_resources(self, user: str, type_: str | None, limit: int | None,
                             marker: str | None) -> list[Resource]:
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

    async def lease_ips(self, user: str, server: str, static: list[tuple[int, str, str]],
                        auto: list[tuple[int, str]], first: str, last: str) -> list[Lease]:
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


class Store(UserStore, QuotaStore, DriveStore, ImageStore, ImageJobStore, ServerStore, ResourceStore,
            LeaseStore, Protocol):
    """The whole metadata store."""

    async def open(self) -> None:
        """Open the store, creating it or bringing its schema up to date: rows written by an
        older version load; a store newer than this program is refused."""

    async def close(self) -> None:
        """Close the store once no call is under way; it cannot be opened again."""
