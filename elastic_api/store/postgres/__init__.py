"""The PostgreSQL store: the same Protocols as store/sqlite/, for several API nodes sharing one
database (config `database_url`).

The driver is psycopg 3 (`psycopg[binary,pool]`), used async with its connection pool, rather
than asyncpg: it speaks DB-API (cursors, rowcount, executemany) so the row modules read like the
SQLite ones; it maps every SQLSTATE to its own exception class (DiskFull for 53100,
SerializationFailure, DeadlockDetected, UniqueViolation …), which is what the store's error
mapping and retries need; JSONB and BYTEA come back as Python values with no codecs to
register; its pool checks connections and reconnects after a database restart; and it is typed
(mypy checks the calls). asyncpg is faster per query, but a control plane's store calls are a
few small statements each, where the difference is lost in the round trips.

How it keeps the contract without SQLite's single writer (details in each module):
- every call is one transaction on a pooled connection; writes at READ COMMITTED with the locks
  their checks need, reads of several statements in one REPEATABLE READ snapshot; a deadlock or
  serialization failure is retried whole (engine.py);
- activate_server locks the drives it claims (FOR NO KEY UPDATE, in ID order) before checking
  their claims and jobs, and add_job locks the drive too: one exclusive drive, one winner;
- IP picks (insert_ip_from_pool, lease_ips) and IP resources run under the pool's advisory lock;
- a resource's job queue (add_job, claim_job) runs under an advisory lock on the resource, so
  IDs are in commit order per resource and at most one job runs on it;
- counts under a limit (SSH keys, groups), support records and reservation chains run under an
  advisory lock on what they count;
- a full disk (SQLSTATE 53100) is FullError;
- critical sections that span several calls (a guest's start, a host's reconcile) hold session
  advisory locks on a connection of the node's own (node_lock, locks.py), and each node's name
  on job leases is a session lock there too (claim_node), so two live nodes never share one.
"""

from __future__ import annotations

from elastic_api.store.postgres.audit import AuditRows
from elastic_api.store.postgres.drives import DriveRows
from elastic_api.store.postgres.ecs import EcsRows
from elastic_api.store.postgres.ecs_servers import EcsServerRows
from elastic_api.store.postgres.engine import PostgresEngine
from elastic_api.store.postgres.images import ImageRows
from elastic_api.store.postgres.jobs import JobRows
from elastic_api.store.postgres.locks import LockRows
from elastic_api.store.postgres.metrics import MetricsRows
from elastic_api.store.postgres.resources import ResourceRows
from elastic_api.store.postgres.scripts import ScriptRows
from elastic_api.store.postgres.servers import ServerRows
from elastic_api.store.postgres.snapshots import SnapshotRows
from elastic_api.store.postgres.users import UserRows

__all__ = ["PostgresEngine", "PostgresStore"]


class PostgresStore(
    UserRows,
    DriveRows,
    ImageRows,
    JobRows,
    ServerRows,
    ResourceRows,
    EcsRows,
    MetricsRows,
    AuditRows,
    EcsServerRows,
    LockRows,
    ScriptRows,
    SnapshotRows,
):
    """The Store over one PostgreSQL database, shared by every node that names it."""

    async def close(self) -> None:
        await self.close_node_locks()
        await super().close()
