"""ECS servers' snapshots and users' templates (store/base_ecs.py SnapshotStore, TemplateStore)."""

from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.snapshot import Snapshot, Template
from elastic_api.store.sqlite.engine import SqliteEngine

SNAPSHOT = "id, owner, server, description, notes, status, created, updated, parent, last_restored"
TEMPLATE = "id, owner, uuid, description, notes, status, source, snapshot, size, created, so"
_TEMPLATE_CHANGES = frozenset({"description", "notes", "status", "size"})


def snapshot_row(row: tuple[Any, ...]) -> Snapshot:
    return Snapshot(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], bool(row[9]))


def template_row(row: tuple[Any, ...]) -> Template:
    return Template(*row)


class SnapshotRows(SqliteEngine):
    # -- snapshots ------------------------------------------------------------------------------
    async def insert_snapshot(self, snapshot: Snapshot, limit: int) -> Snapshot:
        def insert(db: sqlite3.Connection) -> Snapshot:
            (count,) = db.execute("SELECT count(*) FROM ecs_snapshots WHERE server = ?", (snapshot.server,)).fetchone()
            if count >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} snapshots per server")
            s = snapshot
            cursor = db.execute(
                f"INSERT INTO ecs_snapshots ({SNAPSHOT.split(', ', 1)[1]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.owner, s.server, s.description, s.notes, s.status, s.created, s.updated, s.parent, 0),
            )
            row = db.execute(f"SELECT {SNAPSHOT} FROM ecs_snapshots WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return snapshot_row(row)

        return await self._write(insert)

    async def list_snapshots(self, owner: str, server: int) -> list[Snapshot]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {SNAPSHOT} FROM ecs_snapshots WHERE owner = ? AND server = ? ORDER BY id", (owner, server)
            ).fetchall()
        )
        return [snapshot_row(row) for row in rows]

    async def get_snapshot(self, owner: str, id_: int) -> Snapshot | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {SNAPSHOT} FROM ecs_snapshots WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return snapshot_row(row) if row else None

    async def update_snapshot(self, id_: int, status: str, updated: int) -> bool:
        return (
            await self._execute("UPDATE ecs_snapshots SET status = ?, updated = ? WHERE id = ?", (status, updated, id_))
            == 1
        )

    async def mark_restored(self, id_: int, updated: int) -> bool:
        def mark(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT server FROM ecs_snapshots WHERE id = ?", (id_,)).fetchone()
            if row is None:
                return False
            db.execute("UPDATE ecs_snapshots SET last_restored = 0 WHERE server = ? AND last_restored = 1", row)
            db.execute("UPDATE ecs_snapshots SET last_restored = 1, updated = ? WHERE id = ?", (updated, id_))
            return True

        return await self._write(mark)

    async def delete_snapshot(self, id_: int) -> bool:
        return await self._write(
            lambda db: db.execute("DELETE FROM ecs_snapshots WHERE id = ?", (id_,)).rowcount == 1, freeing=True
        )

    # -- templates ------------------------------------------------------------------------------
    async def insert_template(self, template: Template, limit: int) -> Template:
        def insert(db: sqlite3.Connection) -> Template:
            (count,) = db.execute("SELECT count(*) FROM ecs_templates WHERE owner = ?", (template.owner,)).fetchone()
            if count >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} templates per user")
            t = template
            cursor = db.execute(
                f"INSERT INTO ecs_templates ({TEMPLATE.split(', ', 1)[1]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (t.owner, t.uuid, t.description, t.notes, t.status, t.source, t.snapshot, t.size, t.created, t.so),
            )
            row = db.execute(f"SELECT {TEMPLATE} FROM ecs_templates WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return template_row(row)

        return await self._write(insert)

    async def list_templates(self, owner: str) -> list[Template]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {TEMPLATE} FROM ecs_templates WHERE owner = ? ORDER BY id", (owner,)
            ).fetchall()
        )
        return [template_row(row) for row in rows]

    async def get_template(self, owner: str, id_: int) -> Template | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {TEMPLATE} FROM ecs_templates WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return template_row(row) if row else None

    async def template_by_uuid(self, owner: str, uuid: str) -> Template | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {TEMPLATE} FROM ecs_templates WHERE uuid = ? AND owner = ?", (uuid, owner)
            ).fetchone()
        )
        return template_row(row) if row else None

    async def update_template(self, id_: int, **changes: Any) -> bool:
        if not changes:
            return await self._run(
                lambda: self.db.execute("SELECT 1 FROM ecs_templates WHERE id = ?", (id_,)).fetchone() is not None
            )
        if not set(changes) <= _TEMPLATE_CHANGES:
            raise ValueError(f"not changeable: {sorted(set(changes) - _TEMPLATE_CHANGES)}")
        assignments = ", ".join(f"{key} = ?" for key in changes)
        return (
            await self._execute(f"UPDATE ecs_templates SET {assignments} WHERE id = ?", (*changes.values(), id_)) == 1
        )

    async def delete_template(self, id_: int) -> bool:
        return await self._write(
            lambda db: db.execute("DELETE FROM ecs_templates WHERE id = ?", (id_,)).rowcount == 1, freeing=True
        )
