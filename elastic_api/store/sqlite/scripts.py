"""Cloud scripts' rows (/scripts): a user's library, numbered globally."""

from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.cloudscript import CloudScript
from elastic_api.store.sqlite.engine import SqliteEngine

_COLUMNS = "id, owner, title, content, windows, created"


def _script(row: tuple[Any, ...]) -> CloudScript:
    return CloudScript(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


class ScriptRows(SqliteEngine):
    async def insert_script(
        self, owner: str, title: str, content: str, windows: bool, created: int, limit: int
    ) -> CloudScript:
        def insert(db: sqlite3.Connection) -> CloudScript:
            (count,) = db.execute("SELECT count(*) FROM cloud_scripts WHERE owner = ?", (owner,)).fetchone()
            if count >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} scripts per user")
            cursor = db.execute(
                "INSERT INTO cloud_scripts (owner, title, content, windows, created) VALUES (?, ?, ?, ?, ?)",
                (owner, title, content, int(windows), created),
            )
            return CloudScript(int(cursor.lastrowid or 0), owner, title, content, windows, created)

        return await self._write(insert)

    async def list_scripts(self, owner: str) -> list[CloudScript]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM cloud_scripts WHERE owner = ? ORDER BY id", (owner,)
            ).fetchall()
        )
        return [_script(row) for row in rows]

    async def get_script(self, owner: str, id_: int) -> CloudScript | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM cloud_scripts WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return _script(row) if row else None

    async def update_script(
        self, owner: str, id_: int, title: str | None, content: str | None, windows: bool | None
    ) -> CloudScript | None:
        def update(db: sqlite3.Connection) -> CloudScript | None:
            db.execute(
                "UPDATE cloud_scripts SET title = coalesce(?, title), content = coalesce(?, content),"
                " windows = coalesce(?, windows) WHERE id = ? AND owner = ?",
                (title, content, None if windows is None else int(windows), id_, owner),
            )
            row = db.execute(
                f"SELECT {_COLUMNS} FROM cloud_scripts WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
            return _script(row) if row else None

        return await self._write(update)

    async def delete_script(self, owner: str, id_: int) -> bool:
        return await self._write(
            lambda db: db.execute("DELETE FROM cloud_scripts WHERE id = ? AND owner = ?", (id_, owner)).rowcount == 1,
            freeing=True,
        )
