"""The ECS dialect's own rows: API tokens, SSH keys and groups. A count under a per-user limit is
checked and the row added under an advisory lock on the user and the kind, so concurrent adds
on several nodes cannot both see room for one."""

from __future__ import annotations

from typing import Any

from elastic_api.errors import QuotaExceeded
from elastic_api.model.group import Group, group_name
from elastic_api.model.sshkey import SshKey
from elastic_api.model.token import ApiToken
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock

_TOKEN = "digest, owner, group_name, created, hint"
_GROUP = "id, owner, notes, enabled, password_hash, created"
_KEY = "id, owner, label, key, created"


def _token(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(bytes(row[0]), row[1], row[2], row[3], row[4])


def _group(row: tuple[Any, ...]) -> Group:
    return Group(int(row[0]), row[1], row[2], bool(row[3]), bytes(row[4]), row[5])


def _key(row: tuple[Any, ...]) -> SshKey:
    return SshKey(int(row[0]), row[1], row[2], row[3], row[4])


class EcsRows(PostgresEngine):
    # -- API tokens ---------------------------------------------------------------------------
    async def insert_token(self, token: ApiToken) -> None:
        await self._execute(
            f"INSERT INTO api_tokens ({_TOKEN}) VALUES (%s, %s, %s, %s, %s)",
            (token.digest, token.owner, token.group, token.created, token.hint),
        )

    async def get_token(self, digest: bytes) -> ApiToken | None:
        row = await self._one(f"SELECT {_TOKEN} FROM api_tokens WHERE digest = %s", (digest,))
        return _token(row) if row else None

    async def list_tokens(self, user: str) -> list[ApiToken]:
        rows = await self._all(f"SELECT {_TOKEN} FROM api_tokens WHERE owner = %s ORDER BY created, digest", (user,))
        return [_token(row) for row in rows]

    async def delete_token(self, digest: bytes) -> bool:
        return await self._execute("DELETE FROM api_tokens WHERE digest = %s", (digest,)) == 1

    # -- SSH keys -----------------------------------------------------------------------------
    async def insert_ssh_key(self, owner: str, label: str, key: str, created: int, limit: int) -> SshKey | None:
        async def insert(conn: Conn) -> SshKey | None:
            await lock(conn, "ssh-keys", owner)
            if await (
                await conn.execute("SELECT 1 FROM ssh_keys WHERE owner = %s AND label = %s", (owner, label))
            ).fetchone():
                return None
            count = await (await conn.execute("SELECT count(*) FROM ssh_keys WHERE owner = %s", (owner,))).fetchone()
            if count is not None and count[0] >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} SSH keys per user")
            row = await (
                await conn.execute(
                    f"INSERT INTO ssh_keys (owner, label, key, created) VALUES (%s, %s, %s, %s) RETURNING {_KEY}",
                    (owner, label, key, created),
                )
            ).fetchone()
            assert row is not None
            return _key(row)

        return await self._write(insert)

    async def list_ssh_keys(self, owner: str) -> list[SshKey]:
        return [
            _key(row) for row in await self._all(f"SELECT {_KEY} FROM ssh_keys WHERE owner = %s ORDER BY id", (owner,))
        ]

    async def get_ssh_key(self, owner: str, id_: int) -> SshKey | None:
        row = await self._one(f"SELECT {_KEY} FROM ssh_keys WHERE id = %s AND owner = %s", (id_, owner))
        return _key(row) if row else None

    async def delete_ssh_key(self, owner: str, id_: int) -> bool:
        return await self._execute("DELETE FROM ssh_keys WHERE id = %s AND owner = %s", (id_, owner)) == 1

    # -- groups -------------------------------------------------------------------------------
    async def insert_group(self, owner: str, notes: str, password_hash: bytes, created: int, limit: int) -> Group:
        async def insert(conn: Conn) -> Group:
            await lock(conn, "groups", owner)
            count = await (await conn.execute("SELECT count(*) FROM ecs_groups WHERE owner = %s", (owner,))).fetchone()
            if count is not None and count[0] >= limit:
                raise QuotaExceeded(f"quota exceeded: at most {limit} groups per user")
            row = await (
                await conn.execute(
                    "INSERT INTO ecs_groups (owner, notes, enabled, password_hash, created)"
                    f" VALUES (%s, %s, TRUE, %s, %s) RETURNING {_GROUP}",
                    (owner, notes, password_hash, created),
                )
            ).fetchone()
            assert row is not None
            return _group(row)

        return await self._write(insert)

    async def list_groups(self, owner: str) -> list[Group]:
        return [
            _group(row)
            for row in await self._all(f"SELECT {_GROUP} FROM ecs_groups WHERE owner = %s ORDER BY id", (owner,))
        ]

    async def get_group(self, owner: str, id_: int) -> Group | None:
        row = await self._one(f"SELECT {_GROUP} FROM ecs_groups WHERE id = %s AND owner = %s", (id_, owner))
        return _group(row) if row else None

    async def group_exists(self, user: str, group: int) -> bool:
        return await self._one("SELECT 1 FROM ecs_groups WHERE id = %s AND owner = %s", (group, user)) is not None

    async def delete_group(self, owner: str, id_: int) -> bool:
        async def delete(conn: Conn) -> bool:
            if (await conn.execute("DELETE FROM ecs_groups WHERE id = %s AND owner = %s", (id_, owner))).rowcount != 1:
                return False
            await conn.execute("DELETE FROM api_tokens WHERE owner = %s AND group_name = %s", (owner, group_name(id_)))
            return True

        return await self._write(delete, freeing=True)
