"""Cloud scripts' rows (/scripts): a user's library, numbered globally. The count under the
per-user limit is checked and the row added under an advisory lock on the user."""

from __future__ import annotations

from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.cloudscript import CloudScript
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock

_COLUMNS = "id, owner, title, content, windows, created"


def _script(row: tuple[Any, ...]) -> CloudScript:
    return CloudScript(int(row[0]), row[1], row[2], row[3], bool(row[4]), row[5])


class ScriptRows(PostgresEngine):
    async def insert_script(
        self, owner: str, title: str, content: str, windows: bool, created: int, limit: int
    ) -> CloudScript:
        async def insert(conn: Conn) -> CloudScript:
            await lock(conn, "scripts", owner)
            count = await (
                await conn.execute("SELECT count(*) FROM cloud_scripts WHERE owner = %s", (owner,))
            ).fetchone()
            if count is not None and count[0] >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} scripts per user")
            row = await (
                await conn.execute(
                    "INSERT INTO cloud_scripts (owner, title, content, windows, created)"
                    f" VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                    (owner, title, content, windows, created),
                )
            ).fetchone()
            assert row is not None
            return _script(row)

        return await self._write(insert)

    async def list_scripts(self, owner: str) -> list[CloudScript]:
        rows = await self._all(f"SELECT {_COLUMNS} FROM cloud_scripts WHERE owner = %s ORDER BY id", (owner,))
        return [_script(row) for row in rows]

    async def get_script(self, owner: str, id_: int) -> CloudScript | None:
        row = await self._one(f"SELECT {_COLUMNS} FROM cloud_scripts WHERE id = %s AND owner = %s", (id_, owner))
        return _script(row) if row else None

    async def update_script(
        self, owner: str, id_: int, title: str | None, content: str | None, windows: bool | None
    ) -> CloudScript | None:
        async def update(conn: Conn) -> CloudScript | None:
            row = await (
                await conn.execute(
                    "UPDATE cloud_scripts SET title = coalesce(%s, title), content = coalesce(%s, content),"
                    f" windows = coalesce(%s, windows) WHERE id = %s AND owner = %s RETURNING {_COLUMNS}",
                    (title, content, windows, id_, owner),
                )
            ).fetchone()
            return _script(row) if row else None

        return await self._write(update)

    async def delete_script(self, owner: str, id_: int) -> bool:
        return await self._execute("DELETE FROM cloud_scripts WHERE id = %s AND owner = %s", (id_, owner)) == 1
