"""The ECS dialect's own rows: SSH keys, groups, and the standard images' catalogue numbers."""

from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.catalogue import CatalogueImage
from elastic_api.model.group import Group, group_name
from elastic_api.model.image import StandardImage
from elastic_api.model.sshkey import SshKey
from elastic_api.store.sqlite.engine import SqliteEngine

_GROUP_COLUMNS = "id, owner, notes, enabled, password_hash, created"


def _group(row: tuple[Any, ...]) -> Group:
    return Group(row[0], row[1], row[2], bool(row[3]), bytes(row[4]), row[5])


class EcsRows(SqliteEngine):
    # -- SSH keys -----------------------------------------------------------------------------
    async def insert_ssh_key(self, owner: str, label: str, key: str, created: int, limit: int) -> SshKey | None:
        def insert(db: sqlite3.Connection) -> SshKey | None:
            if db.execute("SELECT 1 FROM ssh_keys WHERE owner = ? AND label = ?", (owner, label)).fetchone():
                return None
            (count,) = db.execute("SELECT count(*) FROM ssh_keys WHERE owner = ?", (owner,)).fetchone()
            if count >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} SSH keys per user")
            cursor = db.execute(
                "INSERT INTO ssh_keys (owner, label, key, created) VALUES (?, ?, ?, ?)", (owner, label, key, created)
            )
            return SshKey(int(cursor.lastrowid or 0), owner, label, key, created)

        return await self._write(insert)

    async def list_ssh_keys(self, owner: str) -> list[SshKey]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT id, owner, label, key, created FROM ssh_keys WHERE owner = ? ORDER BY id", (owner,)
            ).fetchall()
        )
        return [SshKey(*row) for row in rows]

    async def get_ssh_key(self, owner: str, id_: int) -> SshKey | None:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT id, owner, label, key, created FROM ssh_keys WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return SshKey(*row) if row else None

    async def delete_ssh_key(self, owner: str, id_: int) -> bool:
        return await self._write(
            lambda db: db.execute("DELETE FROM ssh_keys WHERE id = ? AND owner = ?", (id_, owner)).rowcount == 1,
            freeing=True,
        )

    # -- groups -------------------------------------------------------------------------------
    async def insert_group(self, owner: str, notes: str, password_hash: bytes, created: int, limit: int) -> Group:
        def insert(db: sqlite3.Connection) -> Group:
            (count,) = db.execute("SELECT count(*) FROM ecs_groups WHERE owner = ?", (owner,)).fetchone()
            if count >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} groups per user")
            cursor = db.execute(
                "INSERT INTO ecs_groups (owner, notes, enabled, password_hash, created) VALUES (?, ?, 1, ?, ?)",
                (owner, notes, password_hash, created),
            )
            return Group(int(cursor.lastrowid or 0), owner, notes, True, password_hash, created)

        return await self._write(insert)

    async def list_groups(self, owner: str) -> list[Group]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_GROUP_COLUMNS} FROM ecs_groups WHERE owner = ? ORDER BY id", (owner,)
            ).fetchall()
        )
        return [_group(row) for row in rows]

    async def get_group(self, owner: str, id_: int) -> Group | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_GROUP_COLUMNS} FROM ecs_groups WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return _group(row) if row else None

    async def group_exists(self, user: str, group: int) -> bool:
        return await self.get_group(user, group) is not None

    async def delete_group(self, owner: str, id_: int) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            if db.execute("DELETE FROM ecs_groups WHERE id = ? AND owner = ?", (id_, owner)).rowcount != 1:
                return False
            db.execute("DELETE FROM api_tokens WHERE owner = ? AND group_name = ?", (owner, group_name(id_)))
            return True

        return await self._write(delete, freeing=True)

    # -- the catalogue's numbers for standard images ----------------------------------------
    async def numbered_images(self) -> list[CatalogueImage]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT n.number, i.id, i.name, i.size, i.created FROM image_numbers n JOIN images i ON i.id = n.image"
                " ORDER BY n.number"
            ).fetchall()
        )
        return [CatalogueImage(row[0], StandardImage(*row[1:])) for row in rows]
