"""Server snapshots and templates (ECS.md §4 Snapshot and Image): a snapshot is an internal qcow2
snapshot of an ECS server's boot drive (storage/snapshots.py), a template a user's image made
from a boot drive and kept as an immutable base that new drives overlay (storage/bases.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from elastic_api.model.catalogue import CatalogueImage
from elastic_api.model.image import StandardImage

# Statuses, as the ECS Image and Snapshot objects spell them (ECS.md §7: `CD`-style codes).
CREATING, CREATED, FAILED = "CG", "CD", "FL"
STATUS_LABELS = {CREATING: "Creating", CREATED: "Created", FAILED: "Failed"}
DELETING = "DE"  # a template whose delete action is under way
# An ECS server's status while a rollback restores its drive (ECS.md §5).
REIMAGING = "Reimaging"

# Templates are named `ei` and six digits from a counter never reused, like servers' `ec` names.
FIRST_TEMPLATE = 100000
_TEMPLATE = re.compile(r"^ei([0-9]{6,9})$")
MAX_TEXT = 1024  # description and notes: one line each, as a server's notes


@dataclass(frozen=True)
class Snapshot:
    id: int  # global, never reused (the number clients name it by)
    owner: str
    server: int  # the ECS server's id (its row); the snapshot goes with the server
    description: str
    notes: str
    status: str
    created: int  # ns since the epoch
    updated: int
    parent: int | None = None  # the snapshot last restored (or made) before this one was taken
    last_restored: bool = False  # the one the server's last rollback restored

    @property
    def tag(self) -> str:
        """Its name inside the qcow2 file: stable, ours, never a client's words."""
        return snapshot_tag(self.id)


def snapshot_tag(id_: int) -> str:
    return f"elastic-snapshot-{id_}"


@dataclass(frozen=True)
class Template:
    id: int  # global, never reused: the number makes the name
    owner: str
    uuid: str  # the base's name in the pool (bases/UUID.raw), also what `image` may name
    description: str
    notes: str
    status: str
    source: str  # the ECS server it was made from (its name)
    snapshot: int | None  # the snapshot it was read from, if any
    size: int  # bytes of the base (the source drive's size), 0 until made
    created: int
    so: str = ""  # the source server's image slug (its family shows as so_base)

    @property
    def name(self) -> str:
        return template_name(self.id)

    @property
    def required_disk_gb(self) -> int:
        return max(1, -(-self.size // 1024**3))


def template_name(id_: int) -> str:
    return f"ei{FIRST_TEMPLATE + id_:06d}"


def template_id(name: str) -> int | None:
    """The id a template name (`ei100001`) or number (`1`) stands for, or None."""
    if name.isdigit() and len(name) < 10:
        return int(name) or None
    match = _TEMPLATE.match(name)
    if match is None or int(match.group(1)) <= FIRST_TEMPLATE:
        return None
    return int(match.group(1)) - FIRST_TEMPLATE


def check_text(field: str, value: str) -> str | None:
    """Why a description or notes is refused (None: fine)."""
    if len(value) > MAX_TEXT or any(ord(c) < 32 and c != "\t" for c in value):
        return f"{field} must be one line of at most {MAX_TEXT} characters"
    return None


def template_images(templates: list[Template]) -> list[CatalogueImage]:
    """The made templates as images a create may name: by `ei` name (the slug stands for it) or
    UUID. Number 0: they are no catalogue's."""
    return [
        CatalogueImage(0, StandardImage(t.uuid, t.name, t.size, t.created)) for t in templates if t.status == CREATED
    ]
