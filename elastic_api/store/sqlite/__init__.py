"""The embedded SQLite store: the engine (one connection on one thread, grouped commits, the
disk-full reserve, migrations) and one module of rows per concept, combined into SqliteStore."""

from __future__ import annotations

from elastic_api.store.sqlite.audit import AuditRows
from elastic_api.store.sqlite.drives import LIST_DRIVE_IDS, LIST_DRIVES, DriveRows
from elastic_api.store.sqlite.ecs import EcsRows
from elastic_api.store.sqlite.ecs_servers import EcsServerRows
from elastic_api.store.sqlite.engine import SqliteEngine, _statements
from elastic_api.store.sqlite.images import ImageRows
from elastic_api.store.sqlite.jobs import JobRows
from elastic_api.store.sqlite.locks import LockRows
from elastic_api.store.sqlite.metrics import MetricsRows
from elastic_api.store.sqlite.resources import ResourceRows
from elastic_api.store.sqlite.scripts import ScriptRows
from elastic_api.store.sqlite.servers import ServerRows
from elastic_api.store.sqlite.snapshots import SnapshotRows
from elastic_api.store.sqlite.tokens import TokenRows
from elastic_api.store.sqlite.users import UserRows

__all__ = ["LIST_DRIVES", "LIST_DRIVE_IDS", "SqliteEngine", "SqliteStore", "_statements"]


class SqliteStore(
    UserRows,
    DriveRows,
    ImageRows,
    JobRows,
    LockRows,
    ServerRows,
    ResourceRows,
    TokenRows,
    EcsRows,
    MetricsRows,
    AuditRows,
    EcsServerRows,
    ScriptRows,
    SnapshotRows,
):
    """The Store over one SQLite database: every concept's rows over the one engine they share."""
