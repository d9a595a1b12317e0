"""API tokens, stored as hashes."""

from __future__ import annotations

from elastic_api.model.token import ApiToken
from elastic_api.store.sqlite.engine import SqliteEngine

_COLUMNS = "digest, owner, group_name, created, hint"


def _token(row: tuple[bytes, str, str | None, int, str]) -> ApiToken:
    return ApiToken(bytes(row[0]), row[1], row[2], row[3], row[4])


class TokenRows(SqliteEngine):
    async def insert_token(self, token: ApiToken) -> None:
        await self._execute(
            f"INSERT INTO api_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (token.digest, token.owner, token.group, token.created, token.hint),
        )

    async def get_token(self, digest: bytes) -> ApiToken | None:
        row = await self._run(
            lambda: self.db.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE digest = ?", (digest,)).fetchone()
        )
        return _token(row) if row else None

    async def list_tokens(self, user: str) -> list[ApiToken]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE owner = ? ORDER BY created, digest", (user,)
            ).fetchall()
        )
        return [_token(row) for row in rows]

    async def delete_token(self, digest: bytes) -> bool:
        return await self._execute("DELETE FROM api_tokens WHERE digest = ?", (digest,)) == 1
