"""Users, and their quotas: each user's own limits and what the user holds now."""

from __future__ import annotations

from elastic_api.errors import QuotaExceeded
from elastic_api.model import quota as quota_model
from elastic_api.model.quota import Quota, Usage
from elastic_api.model.server_record import ACTIVE
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock


async def _overrides(conn: Conn, user: str) -> dict[str, int | None]:
    rows = await (await conn.execute("SELECT key, value FROM quotas WHERE owner = %s", (user,))).fetchall()
    return {str(key): None if value is None else int(value) for key, value in rows}


async def _usage(conn: Conn, user: str) -> Usage:
    # One statement: one snapshot, whatever the transaction's isolation.
    row = await (
        await conn.execute(
            "SELECT (SELECT count(*) FROM drives WHERE owner = %(user)s),"
            " (SELECT coalesce(sum(size), 0) FROM drives WHERE owner = %(user)s),"
            " (SELECT count(*) FROM servers WHERE owner = %(user)s),"
            " (SELECT coalesce(sum(cpu), 0) FROM servers WHERE owner = %(user)s AND status = %(active)s),"
            " (SELECT coalesce(sum(mem), 0) FROM servers WHERE owner = %(user)s AND status = %(active)s),"
            " (SELECT count(*) FROM resources WHERE owner = %(user)s AND type = 'ip'),"
            # What ECS creates were admitted with and their actions have not made yet (ecs_servers.py).
            " h.drives, h.drive_bytes, h.servers, h.cpu, h.mem"
            " FROM (SELECT coalesce(sum(held_drive), 0) AS drives, coalesce(sum(held_drive * disk_gb), 0) * 1073741824"
            " AS drive_bytes, coalesce(sum(held_server), 0) AS servers, coalesce(sum(held_run * cpu), 0) AS cpu,"
            " coalesce(sum(held_run * ram_mb), 0) AS mem FROM ecs_servers WHERE owner = %(user)s) h",
            {"user": user, "active": ACTIVE},
        )
    ).fetchone()
    assert row is not None
    drives, drive_bytes, servers, cpu, mem, ips, h_drives, h_bytes, h_servers, h_cpu, h_mem = (int(v) for v in row)
    return Usage(
        drive_bytes=drive_bytes + h_bytes,
        drives=drives + h_drives,
        servers=servers + h_servers,
        cpu=cpu + h_cpu,
        mem=mem + h_mem,
        ips=ips,
    )


class UserRows(PostgresEngine):
    """Users, and the quotas kept per user (the usage is counted from the other tables)."""

    async def create_user(self, user: str, name: str, secret_hash: bytes, created: int) -> None:
        await self._execute(
            "INSERT INTO users (id, name, secret_hash, created) VALUES (%s, %s, %s, %s)",
            (user, name, secret_hash, created),
        )

    async def user_secret_hash(self, user: str) -> bytes | None:
        row = await self._one("SELECT secret_hash FROM users WHERE id = %s", (user,))
        return bytes(row[0]) if row else None

    # -- quotas -----------------------------------------------------------------------------
    async def quota_overrides(self, user: str) -> dict[str, int | None]:
        return await self._read(lambda conn: _overrides(conn, user))

    async def set_quota_overrides(self, user: str, values: dict[str, int | None], cleared: list[str]) -> bool:
        async def change(conn: Conn) -> bool:
            # The user's row locked against a concurrent change of its quotas (and its deletion);
            # FOR NO KEY UPDATE still lets other transactions insert rows that reference the user.
            if (
                await (await conn.execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", (user,))).fetchone()
                is None
            ):
                return False
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO quotas (owner, key, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                    [(user, key, value) for key, value in values.items()],
                )
            await conn.execute("DELETE FROM quotas WHERE owner = %s AND key = ANY(%s)", (user, list(cleared)))
            return True

        return await self._write(change)

    async def quota_state(self, user: str) -> tuple[dict[str, int | None], Usage]:
        async def read(conn: Conn) -> tuple[dict[str, int | None], Usage]:
            return await _overrides(conn, user), await _usage(conn, user)

        return await self._read(read)

    async def usage(self, user: str) -> Usage:
        return await self._read(lambda conn: _usage(conn, user))

    # -- quota holds ---------------------------------------------------------------------------
    async def hold_quota(self, user: str, adding: Usage, defaults: Quota, now: int, until: int) -> int:
        async def hold(conn: Conn) -> int:
            # The user's admissions one at a time across every node. At READ COMMITTED each
            # statement after the lock sees what the admissions before it committed.
            await lock(conn, "quota", user)
            await conn.execute("DELETE FROM quota_holds WHERE owner = %s AND until <= %s", (user, now))
            row = await (
                await conn.execute(
                    f"SELECT {', '.join(f'coalesce(sum({key}), 0)' for key in quota_model.KEYS)}"
                    " FROM quota_holds WHERE owner = %s",
                    (user,),
                )
            ).fetchone()
            assert row is not None
            held = Usage(**dict(zip(quota_model.KEYS, (int(v) for v in row), strict=True)))
            limits = defaults.with_overrides(await _overrides(conn, user))
            message = quota_model.exceeded(limits, quota_model.combined(await _usage(conn, user), held), adding)
            if message:
                raise QuotaExceeded(message)
            inserted = await (
                await conn.execute(
                    f"INSERT INTO quota_holds (owner, {', '.join(quota_model.KEYS)}, until)"
                    f" VALUES (%s, {', '.join(['%s'] * len(quota_model.KEYS))}, %s) RETURNING id",
                    (user, *(getattr(adding, key) for key in quota_model.KEYS), until),
                )
            ).fetchone()
            assert inserted is not None
            return int(inserted[0])

        return await self._write(hold)

    async def release_quota(self, hold: int) -> None:
        await self._execute("DELETE FROM quota_holds WHERE id = %s", (hold,))
