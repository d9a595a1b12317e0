"""ECS servers' snapshots and users' templates (store/base_ecs.py). A count under a limit is checked
and the row added under an advisory lock on what is counted (the server, the owner)."""

from __future__ import annotations

from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.snapshot import Snapshot, Template
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock

SNAPSHOT = "id, owner, server, description, notes, status, created, updated, parent, last_restored"
TEMPLATE = "id, owner, uuid, description, notes, status, source, snapshot, size, created, so"
_TEMPLATE_CHANGES = frozenset({"description", "notes", "status", "size"})


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    parent = None if row[8] is None else int(row[8])
    return Snapshot(
        int(row[0]), row[1], int(row[2]), row[3], row[4], row[5], int(row[6]), int(row[7]), parent, bool(row[9])
    )


def _template(row: tuple[Any, ...]) -> Template:
    snapshot = None if row[7] is None else int(row[7])
    return Template(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], snapshot, int(row[8]), int(row[9]), row[10]
    )


class SnapshotRows(PostgresEngine):
    # -- snapshots ------------------------------------------------------------------------------
    async def insert_snapshot(self, snapshot: Snapshot, limit: int) -> Snapshot:
        async def insert(conn: Conn) -> Snapshot:
            await lock(conn, "snapshots", str(snapshot.server))
            count = await (
                await conn.execute("SELECT count(*) FROM ecs_snapshots WHERE server = %s", (snapshot.server,))
            ).fetchone()
            if count is not None and count[0] >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} snapshots per server")
            s = snapshot
            row = await (
                await conn.execute(
                    f"INSERT INTO ecs_snapshots ({SNAPSHOT.split(', ', 1)[1]})"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, FALSE) RETURNING {SNAPSHOT}",
                    (s.owner, s.server, s.description, s.notes, s.status, s.created, s.updated, s.parent),
                )
            ).fetchone()
            assert row is not None
            return _snapshot(row)

        return await self._write(insert)

    async def list_snapshots(self, owner: str, server: int) -> list[Snapshot]:
        rows = await self._all(
            f"SELECT {SNAPSHOT} FROM ecs_snapshots WHERE owner = %s AND server = %s ORDER BY id", (owner, server)
        )
        return [_snapshot(row) for row in rows]

    async def get_snapshot(self, owner: str, id_: int) -> Snapshot | None:
        row = await self._one(f"SELECT {SNAPSHOT} FROM ecs_snapshots WHERE id = %s AND owner = %s", (id_, owner))
        return _snapshot(row) if row else None

    async def update_snapshot(self, id_: int, status: str, updated: int) -> bool:
        return (
            await self._execute(
                "UPDATE ecs_snapshots SET status = %s, updated = %s WHERE id = %s", (status, updated, id_)
            )
            == 1
        )

    async def mark_restored(self, id_: int, updated: int) -> bool:
        async def mark(conn: Conn) -> bool:
            row = await (
                await conn.execute("SELECT server FROM ecs_snapshots WHERE id = %s FOR UPDATE", (id_,))
            ).fetchone()
            if row is None:
                return False
            await conn.execute(
                "UPDATE ecs_snapshots SET last_restored = FALSE WHERE server = %s AND last_restored", (row[0],)
            )
            await conn.execute(
                "UPDATE ecs_snapshots SET last_restored = TRUE, updated = %s WHERE id = %s", (updated, id_)
            )
            return True

        return await self._write(mark)

    async def delete_snapshot(self, id_: int) -> bool:
        return await self._execute("DELETE FROM ecs_snapshots WHERE id = %s", (id_,)) == 1

    # -- templates ------------------------------------------------------------------------------
    async def insert_template(self, template: Template, limit: int) -> Template:
        async def insert(conn: Conn) -> Template:
            await lock(conn, "templates", template.owner)
            count = await (
                await conn.execute("SELECT count(*) FROM ecs_templates WHERE owner = %s", (template.owner,))
            ).fetchone()
            if count is not None and count[0] >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} templates per user")
            t = template
            row = await (
                await conn.execute(
                    f"INSERT INTO ecs_templates ({TEMPLATE.split(', ', 1)[1]})"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {TEMPLATE}",
                    (t.owner, t.uuid, t.description, t.notes, t.status, t.source, t.snapshot, t.size, t.created, t.so),
                )
            ).fetchone()
            assert row is not None
            return _template(row)

        return await self._write(insert)

    async def list_templates(self, owner: str) -> list[Template]:
        rows = await self._all(f"SELECT {TEMPLATE} FROM ecs_templates WHERE owner = %s ORDER BY id", (owner,))
        return [_template(row) for row in rows]

    async def get_template(self, owner: str, id_: int) -> Template | None:
        row = await self._one(f"SELECT {TEMPLATE} FROM ecs_templates WHERE id = %s AND owner = %s", (id_, owner))
        return _template(row) if row else None

    async def template_by_uuid(self, owner: str, uuid: str) -> Template | None:
        row = await self._one(f"SELECT {TEMPLATE} FROM ecs_templates WHERE uuid = %s AND owner = %s", (uuid, owner))
        return _template(row) if row else None

    async def update_template(self, id_: int, **changes: Any) -> bool:
        if not changes:
            return await self._one("SELECT 1 FROM ecs_templates WHERE id = %s", (id_,)) is not None
        if not set(changes) <= _TEMPLATE_CHANGES:
            raise ValueError(f"not changeable: {sorted(set(changes) - _TEMPLATE_CHANGES)}")
        assignments = ", ".join(f"{key} = %s" for key in changes)
        return (
            await self._execute(f"UPDATE ecs_templates SET {assignments} WHERE id = %s", (*changes.values(), id_)) == 1
        )

    async def delete_template(self, id_: int) -> bool:
        return await self._execute("DELETE FROM ecs_templates WHERE id = %s", (id_,)) == 1
