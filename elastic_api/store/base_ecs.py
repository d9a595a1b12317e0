"""The store's Protocols for the ECS dialect's own rows: API tokens, SSH keys, groups, ECS
servers, support and reserved records, and the image catalogue's numbers (the general rules of
store/base.py's docstring hold here too)."""

from __future__ import annotations

from typing import Any, Protocol

from elastic_api.model.catalogue import CatalogueImage
from elastic_api.model.cloudscript import CloudScript
from elastic_api.model.ecs import EcsServer
from elastic_api.model.group import Group
from elastic_api.model.job import Job
from elastic_api.model.snapshot import Snapshot, Template
from elastic_api.model.sshkey import SshKey
from elastic_api.model.support import ReservedRecord, ReservedTerm, SupportRecord
from elastic_api.model.token import ApiToken


class TokenStore(Protocol):
    """API tokens, kept as hashes: the hash is the one key a token is found by."""

    async def insert_token(self, token: ApiToken) -> None:
        """Add a token, in one transaction (its owner must be a user)."""

    async def get_token(self, digest: bytes) -> ApiToken | None:
        """The token with this hash; None when there is none (never made, or revoked). The one
        token query without an owner: it establishes who the owner is."""

    async def list_tokens(self, user: str) -> list[ApiToken]:
        """The user's tokens, oldest first; [] for an unknown user."""

    async def delete_token(self, digest: bytes) -> bool:
        """Revoke a token; False when there was none with this hash."""


class SshKeyStore(Protocol):
    """A user's SSH public keys, numbered globally; a label is unique per owner."""

    async def insert_ssh_key(self, owner: str, label: str, key: str, created: int, limit: int) -> SshKey | None:
        """The new key with its number, in one transaction; None, and nothing added, when the
        owner has a key of that label; QuotaExceeded when the owner already has `limit` keys."""

    async def list_ssh_keys(self, owner: str) -> list[SshKey]:
        """The owner's keys by number; [] for an unknown owner."""

    async def get_ssh_key(self, owner: str, id_: int) -> SshKey | None:
        """The key; None when there is none or it is another user's."""

    async def delete_ssh_key(self, owner: str, id_: int) -> bool:
        """False, and nothing done, when there is none or it is another user's."""


class GroupStore(Protocol):
    """A user's groups, numbered from a global counter never reused (the number makes the name)."""

    async def insert_group(self, owner: str, notes: str, password_hash: bytes, created: int, limit: int) -> Group:
        """The new group with its number, in one transaction; QuotaExceeded when the owner already
        has `limit` groups."""

    async def list_groups(self, owner: str) -> list[Group]:
        """The owner's groups by number; [] for an unknown owner."""

    async def get_group(self, owner: str, id_: int) -> Group | None:
        """The group; None when there is none or it is another user's."""

    async def group_exists(self, user: str, group: int) -> bool:
        """Whether the user has a group of that number."""

    async def delete_group(self, owner: str, id_: int) -> bool:
        """False, and nothing done, when there is none or it is another user's. Tokens confined
        to the group go with it (they would see nothing)."""


class EcsServerStore(Protocol):
    """ECS servers (store/sqlite/ecs_servers.py): rows, isolation pairs, and their actions."""

    async def insert_ecs_server(self, server: EcsServer, isolate_from: list[int]) -> EcsServer: ...

    async def get_ecs_server(self, owner: str, id_: int) -> EcsServer | None: ...

    async def ecs_server_by_id(self, id_: int) -> EcsServer | None: ...

    async def list_ecs_servers(self, owner: str | None) -> list[EcsServer]: ...

    async def update_ecs_server(self, id_: int, **changes: Any) -> bool: ...

    async def delete_ecs_server(self, id_: int) -> bool: ...

    async def ecs_manager_of(self, uuid: str) -> str | None:
        """The ECS name of the server whose engine server or boot drive `uuid` is, if any."""

    async def ecs_partners(self, id_: int) -> list[EcsServer]: ...

    async def ecs_actions(self, owner: str, resources: list[str] | None) -> list[Job]: ...

    async def ecs_action(self, owner: str, id_: int) -> Job | None: ...

    async def add_finished_job(self, job: Job) -> Job: ...


class SupportStore(Protocol):
    """Servers' support plans and reservations, by the engine's server UUID and scoped by owner."""

    async def get_support(self, owner: str, server: str) -> SupportRecord | None:
        """The server's support record, cancelled or not; None when there is none or it is another user's."""

    async def replace_support(self, record: SupportRecord, expected: SupportRecord | None) -> bool:
        """Make `record` the server's support in one transaction, if the current one is still
        `expected` (None: none); False, and nothing changed, when it is not (a concurrent change:
        the caller decides again)."""

    async def cancel_support(self, owner: str, server: str, expected: SupportRecord, at: int) -> SupportRecord | None:
        """Mark the support cancelled at `at` in one transaction, if it is still `expected`;
        the record as it is now, or None, and nothing changed, when it is not."""

    async def insert_reservation(
        self, owner: str, server: str, term: ReservedTerm, plan: tuple[int, str], now: int
    ) -> ReservedRecord:
        """Reserve the server for `term` (plan = its plan's id and name) in one transaction:
        from `now`, or from the end of its last reservation if that is later (terms chain)."""

    async def reservations(self, owner: str, server: str) -> list[ReservedRecord]:
        """The server's reservations, oldest first; [] when none or another user's."""

    async def reserved_until(self, server: str) -> int | None:
        """Maintenance: when the server's last reservation ends (ns), whoever owns it; None when never reserved."""


class CatalogueStore(Protocol):
    async def numbered_images(self) -> list[CatalogueImage]:
        """Every standard image with its catalogue number, by number. Numbers are given when an
        image is added, never change and are never reused."""


class CloudScriptStore(Protocol):
    """A user's cloud scripts (/scripts), numbered globally (numbers never reused)."""

    async def insert_script(
        self, owner: str, title: str, content: str, windows: bool, created: int, limit: int
    ) -> CloudScript:
        """The new script with its number, in one transaction; QuotaExceeded, and nothing added,
        when the owner already has `limit` scripts."""

    async def list_scripts(self, owner: str) -> list[CloudScript]:
        """The owner's scripts by number; [] for an unknown owner."""

    async def get_script(self, owner: str, id_: int) -> CloudScript | None:
        """The script; None when there is none or it is another user's."""

    async def update_script(
        self, owner: str, id_: int, title: str | None, content: str | None, windows: bool | None
    ) -> CloudScript | None:
        """Change the given fields (None: unchanged) in one transaction; the script as it is now,
        or None, and nothing changed, when there is none or it is another user's."""

    async def delete_script(self, owner: str, id_: int) -> bool:
        """False, and nothing done, when there is none or it is another user's."""


class SnapshotStore(Protocol):
    """ECS servers' snapshots (the rows; the snapshots themselves live in the boot drive's file),
    numbered from a global counter never reused; gone with their server."""

    async def insert_snapshot(self, snapshot: Snapshot, limit: int) -> Snapshot:
        """The new snapshot with its number (the given id is ignored), in one transaction;
        QuotaExceeded, nothing added, when its server already has `limit` snapshots."""

    async def list_snapshots(self, owner: str, server: int) -> list[Snapshot]:
        """The server's snapshots by number; [] when none or the server is another user's."""

    async def get_snapshot(self, owner: str, id_: int) -> Snapshot | None:
        """The snapshot; None when there is none or it is another user's."""

    async def update_snapshot(self, id_: int, status: str, updated: int) -> bool:
        """Set its status; False when it is gone."""

    async def mark_restored(self, id_: int, updated: int) -> bool:
        """Make it its server's last restored snapshot (and no other of that server), in one
        transaction; False when it is gone."""

    async def delete_snapshot(self, id_: int) -> bool:
        """False when there was none."""


class TemplateStore(Protocol):
    """Users' templates (images made from a server's boot drive), numbered from a global counter
    never reused (the number makes the `ei` name); the UUID names its base in the pool."""

    async def insert_template(self, template: Template, limit: int) -> Template:
        """The new template with its number (the given id is ignored), in one transaction;
        QuotaExceeded, nothing added, when its owner already has `limit` templates."""

    async def list_templates(self, owner: str) -> list[Template]:
        """The owner's templates by number; [] for an unknown owner."""

    async def get_template(self, owner: str, id_: int) -> Template | None:
        """The template; None when there is none or it is another user's."""

    async def template_by_uuid(self, owner: str, uuid: str) -> Template | None:
        """The owner's template whose base is `uuid`; None when none (or another user's)."""

    async def update_template(self, id_: int, **changes: Any) -> bool:
        """Change description, notes, status or size; False when it is gone."""

    async def delete_template(self, id_: int) -> bool:
        """False when there was none."""
