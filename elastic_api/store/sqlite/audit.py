"""The audit trail's rows, and servers' support and reservation records."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from elastic_api.errors import UsageError
from elastic_api.model.audit import Actor, AuditEntry, AuditQuery, Credential
from elastic_api.model.support import ReservedRecord, ReservedTerm, SupportPlan, SupportRecord, add_months
from elastic_api.store.sqlite.engine import SqliteEngine

_AUDIT = "id, owner, credential, group_name, dialect, method, route, target, at, status"
_SUPPORT = (
    "server, owner, code, title, weight, days, immutable, may_downgrade, monthly_price, start, end_at, cancelled_at"
)
_RESERVED = "id, server, owner, term, months, plan, plan_name, discount, start, end_at"


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    actor = Actor(row[1], Credential(row[2]), row[3])
    return AuditEntry(actor, row[4], row[5], row[6], row[7], row[8], row[9], row[0])


def _support(row: tuple[Any, ...]) -> SupportRecord:
    plan = SupportPlan(row[2], row[3], row[4], row[5], bool(row[6]), bool(row[7]), row[8])
    return SupportRecord(row[0], row[1], plan, row[9], row[10], row[11])


def _support_row(r: SupportRecord) -> tuple[Any, ...]:
    p = r.plan
    return (
        r.server,
        r.owner,
        p.code,
        p.title,
        p.weight,
        p.days,
        int(p.immutable),
        int(p.may_downgrade),
        p.monthly_price,
        r.start,
        r.end,
        r.cancelled_at,
    )


class AuditRows(SqliteEngine):
    # -- the audit trail ------------------------------------------------------------------------
    async def insert_audit(self, entries: Sequence[AuditEntry]) -> None:
        rows = [
            (
                e.actor.user,
                e.actor.credential.value,
                e.actor.group,
                e.dialect,
                e.method,
                e.route,
                e.target,
                e.at,
                e.status,
            )
            for e in entries
        ]
        await self._write(
            lambda db: db.executemany(
                "INSERT INTO audit_log (owner, credential, group_name, dialect, method, route, target, at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        )

    async def audit_page(self, user: str, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
        where, params = "owner = ?", list[Any]([user])
        if query.target is not None:
            where += " AND target = ?"
            params.append(query.target)
        if query.group is not None:
            where += " AND group_name = ?"
            params.append(query.group)

        def read() -> tuple[int, list[AuditEntry]]:
            (total,) = self.db.execute(f"SELECT count(*) FROM audit_log WHERE {where}", params).fetchone()
            clause, extra = where, list(params)
            if query.before is not None:
                if not self.db.execute(
                    f"SELECT 1 FROM audit_log WHERE {where} AND id = ?", [*params, query.before]
                ).fetchone():
                    raise UsageError(f"unknown marker: {query.before}")
                clause += " AND id < ?"
                extra.append(query.before)
            rows = self.db.execute(
                f"SELECT {_AUDIT} FROM audit_log WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*extra, -1 if query.limit is None else query.limit, query.offset],
            ).fetchall()
            return total, [_entry(row) for row in rows]

        return await self._run(read)

    async def get_audit(self, user: str, id_: int) -> AuditEntry | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_AUDIT} FROM audit_log WHERE id = ? AND owner = ?", (id_, user)
            ).fetchone()
        )
        return _entry(row) if row else None

    async def prune_audit(self, before: int) -> int:
        return await self._write(
            lambda db: db.execute("DELETE FROM audit_log WHERE at < ?", (before,)).rowcount, freeing=True
        )

    # -- support plans --------------------------------------------------------------------------
    async def get_support(self, owner: str, server: str) -> SupportRecord | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_SUPPORT} FROM server_support WHERE server = ? AND owner = ?", (server, owner)
            ).fetchone()
        )
        return _support(row) if row else None

    async def replace_support(self, record: SupportRecord, expected: SupportRecord | None) -> bool:
        def replace(db: sqlite3.Connection) -> bool:
            row = db.execute(f"SELECT {_SUPPORT} FROM server_support WHERE server = ?", (record.server,)).fetchone()
            if (_support(row) if row else None) != expected:
                return False
            db.execute(
                f"INSERT OR REPLACE INTO server_support ({_SUPPORT}) VALUES ({', '.join('?' * 12)})",
                _support_row(record),
            )
            return True

        return await self._write(replace)

    async def cancel_support(self, owner: str, server: str, expected: SupportRecord, at: int) -> SupportRecord | None:
        def cancel(db: sqlite3.Connection) -> SupportRecord | None:
            row = db.execute(
                f"SELECT {_SUPPORT} FROM server_support WHERE server = ? AND owner = ?", (server, owner)
            ).fetchone()
            if row is None or _support(row) != expected:
                return None
            db.execute("UPDATE server_support SET cancelled_at = ? WHERE server = ?", (at, server))
            return SupportRecord(expected.server, expected.owner, expected.plan, expected.start, expected.end, at)

        return await self._write(cancel)

    # -- reservations ---------------------------------------------------------------------------
    async def insert_reservation(
        self, owner: str, server: str, term: ReservedTerm, plan: tuple[int, str], now: int
    ) -> ReservedRecord:
        def insert(db: sqlite3.Connection) -> ReservedRecord:
            (last,) = db.execute("SELECT max(end_at) FROM server_reservations WHERE server = ?", (server,)).fetchone()
            start = max(now, last or 0)
            end = add_months(start, term.months)
            cursor = db.execute(
                f"INSERT INTO server_reservations ({_RESERVED.removeprefix('id, ')}) VALUES ({', '.join('?' * 9)})",
                (server, owner, term.id, term.months, plan[0], plan[1], term.discount, start, end),
            )
            return ReservedRecord(
                int(cursor.lastrowid or 0),
                server,
                owner,
                term.id,
                term.months,
                plan[0],
                plan[1],
                term.discount,
                start,
                end,
            )

        return await self._write(insert)

    async def reservations(self, owner: str, server: str) -> list[ReservedRecord]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_RESERVED} FROM server_reservations WHERE server = ? AND owner = ? ORDER BY id",
                (server, owner),
            ).fetchall()
        )
        return [ReservedRecord(*row) for row in rows]

    async def reserved_until(self, server: str) -> int | None:
        row = await self._run(
            lambda: self.db.execute(
                "SELECT max(end_at) FROM server_reservations WHERE server = ?", (server,)
            ).fetchone()
        )
        return row[0] if row else None
