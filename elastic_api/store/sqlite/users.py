"""Users, and their quotas: each user's own limits and what the user holds now."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from elastic_api.errors import QuotaExceeded
from elastic_api.model import quota as quota_model
from elastic_api.model.quota import Quota, Usage
from elastic_api.model.server_record import ACTIVE
from elastic_api.store.sqlite.engine import SqliteEngine


class UserRows(SqliteEngine):
    """Users, and the quotas kept per user (the usage is counted from the other tables)."""

    def __init__(self, path: Path, *, reserve: int = 0, inline_rows: int = 200, cached_rows: int = 10_000) -> None:
        super().__init__(path, reserve=reserve, inline_rows=inline_rows, cached_rows=cached_rows)
        self._quota_holds: dict[int, tuple[str, Usage, int]] = {}  # id: (owner, usage, lapses at)
        self._quota_hold_ids = itertools.count(1)

    async def create_user(self, user: str, name: str, secret_hash: bytes, created: int) -> None:
        await self._execute(
            "INSERT INTO users (id, name, secret_hash, created) VALUES (?, ?, ?, ?)", (user, name, secret_hash, created)
        )

    async def user_secret_hash(self, user: str) -> bytes | None:
        def query() -> bytes | None:
            row = self.db.execute("SELECT secret_hash FROM users WHERE id = ?", (user,)).fetchone()
            return bytes(row[0]) if row else None

        return await self._run(query)

    # -- quotas -----------------------------------------------------------------------------
    async def quota_overrides(self, user: str) -> dict[str, int | None]:
        return await self._run(self._overrides, user)

    async def set_quota_overrides(self, user: str, values: dict[str, int | None], cleared: list[str]) -> bool:
        def change(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM users WHERE id = ?", (user,)).fetchone() is None:
                return False
            db.executemany(
                "INSERT INTO quotas (owner, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                [(user, key, value) for key, value in values.items()],
            )
            db.executemany("DELETE FROM quotas WHERE owner = ? AND key = ?", [(user, key) for key in cleared])
            return True

        return await self._write(change)

    def _overrides(self, user: str) -> dict[str, int | None]:
        return {
            str(key): value
            for key, value in self.db.execute("SELECT key, value FROM quotas WHERE owner = ?", (user,)).fetchall()
        }

    async def quota_state(self, user: str) -> tuple[dict[str, int | None], Usage]:
        return await self._run(lambda: (self._overrides(user), self._usage(user)))

    async def usage(self, user: str) -> Usage:
        return await self._run(self._usage, user)

    def _usage(self, user: str) -> Usage:
        drives, drive_bytes = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM drives WHERE owner = ?", (user,)
        ).fetchone()
        servers, cpu, mem = self.db.execute(
            "SELECT count(*),"
            " coalesce(sum(CASE WHEN status = :active THEN cpu END), 0),"
            " coalesce(sum(CASE WHEN status = :active THEN mem END), 0)"
            " FROM servers WHERE owner = :user",
            {"user": user, "active": ACTIVE},
        ).fetchone()
        (ips,) = self.db.execute("SELECT count(*) FROM resources WHERE owner = ? AND type = 'ip'", (user,)).fetchone()
        # What ECS creates were admitted with and their actions have not made yet (ecs_servers.py).
        held = self.db.execute(
            "SELECT coalesce(sum(held_drive), 0), coalesce(sum(held_drive * disk_gb), 0) * 1073741824,"
            " coalesce(sum(held_server), 0), coalesce(sum(held_run * cpu), 0), coalesce(sum(held_run * ram_mb), 0)"
            " FROM ecs_servers WHERE owner = ?",
            (user,),
        ).fetchone()
        return Usage(
            drive_bytes=int(drive_bytes) + int(held[1]),
            drives=int(drives) + int(held[0]),
            servers=int(servers) + int(held[2]),
            cpu=int(cpu) + int(held[3]),
            mem=int(mem) + int(held[4]),
            ips=int(ips),
        )

    # -- quota holds ---------------------------------------------------------------------------
    # In memory: one process owns a SQLite file, so its holds die with it (a restart frees them, as
    # the process's commands are gone too), and an admission costs no commit. The check and the
    # hold run in one call on the store's thread, between write groups: one step, exact.
    async def hold_quota(self, user: str, adding: Usage, defaults: Quota, now: int, until: int) -> int:
        holds = self._quota_holds

        def hold() -> int:
            for id_, (_, _, lapses) in list(holds.items()):
                if lapses <= now:
                    del holds[id_]
            held = Usage()
            for owner, usage, _ in holds.values():
                if owner == user:
                    held = quota_model.combined(held, usage)
            limits = defaults.with_overrides(self._overrides(user))
            message = quota_model.exceeded(limits, quota_model.combined(self._usage(user), held), adding)
            if message:
                raise QuotaExceeded(message)
            id_ = next(self._quota_hold_ids)
            holds[id_] = (user, adding, until)
            return id_

        return await self._run(hold)

    async def release_quota(self, hold: int) -> None:
        await self._run(self._quota_holds.pop, hold, None)
