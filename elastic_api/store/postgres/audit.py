"""The audit trail's rows, and servers' support and reservation records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elastic_api.errors import UsageError
from elastic_api.model.audit import Actor, AuditEntry, AuditQuery, Credential
from elastic_api.model.support import ReservedRecord, ReservedTerm, SupportPlan, SupportRecord, add_months
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock

_AUDIT = "id, owner, credential, group_name, dialect, method, route, target, at, status"
_SUPPORT = (
    "server, owner, code, title, weight, days, immutable, may_downgrade, monthly_price, start, end_at, cancelled_at"
)
_RESERVED = "id, server, owner, term, months, plan, plan_name, discount, start, end_at"


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    actor = Actor(row[1], Credential(row[2]), row[3])
    return AuditEntry(actor, row[4], row[5], row[6], row[7], row[8], row[9], int(row[0]))


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
        p.immutable,
        p.may_downgrade,
        float(p.monthly_price),
        r.start,
        r.end,
        r.cancelled_at,
    )


def _reserved(row: tuple[Any, ...]) -> ReservedRecord:
    return ReservedRecord(int(row[0]), *row[1:])


class AuditRows(PostgresEngine):
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
        if not rows:
            return

        async def insert(conn: Conn) -> None:
            async with conn.cursor() as cursor:  # pipelined: one round trip, IDs in the entries' order
                await cursor.executemany(
                    "INSERT INTO audit_log (owner, credential, group_name, dialect, method, route, target, at, status)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )

        await self._write(insert)

    async def audit_page(self, user: str, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
        where, params = "owner = %s", list[Any]([user])
        if query.target is not None:
            where += " AND target = %s"
            params.append(query.target)
        if query.group is not None:
            where += " AND group_name = %s"
            params.append(query.group)

        async def read(conn: Conn) -> tuple[int, list[AuditEntry]]:
            total = await (await conn.execute(f"SELECT count(*) FROM audit_log WHERE {where}", params)).fetchone()
            clause, extra = where, list(params)
            if query.before is not None:
                if not await (
                    await conn.execute(f"SELECT 1 FROM audit_log WHERE {where} AND id = %s", [*params, query.before])
                ).fetchone():
                    raise UsageError(f"unknown marker: {query.before}")
                clause += " AND id < %s"
                extra.append(query.before)
            rows = await (
                await conn.execute(
                    f"SELECT {_AUDIT} FROM audit_log WHERE {clause} ORDER BY id DESC LIMIT %s OFFSET %s",
                    [*extra, query.limit, query.offset],
                )
            ).fetchall()
            return int(total[0]) if total else 0, [_entry(row) for row in rows]

        return await self._read(read)

    async def get_audit(self, user: str, id_: int) -> AuditEntry | None:
        row = await self._one(f"SELECT {_AUDIT} FROM audit_log WHERE id = %s AND owner = %s", (id_, user))
        return _entry(row) if row else None

    async def prune_audit(self, before: int) -> int:
        return await self._execute("DELETE FROM audit_log WHERE at < %s", (before,))

    # -- support plans --------------------------------------------------------------------------
    async def get_support(self, owner: str, server: str) -> SupportRecord | None:
        row = await self._one(
            f"SELECT {_SUPPORT} FROM server_support WHERE server = %s AND owner = %s", (server, owner)
        )
        return _support(row) if row else None

    async def replace_support(self, record: SupportRecord, expected: SupportRecord | None) -> bool:
        async def replace(conn: Conn) -> bool:
            # The lock covers the server with no row yet too: two first attachments compare one by one.
            await lock(conn, "support", record.server)
            row = await (
                await conn.execute(f"SELECT {_SUPPORT} FROM server_support WHERE server = %s", (record.server,))
            ).fetchone()
            if (_support(row) if row else None) != expected:
                return False
            await conn.execute(
                f"INSERT INTO server_support ({_SUPPORT}) VALUES ({', '.join(['%s'] * 12)})"
                " ON CONFLICT (server) DO UPDATE SET"
                f" {', '.join(f'{c} = excluded.{c}' for c in _SUPPORT.replace(' ', '').split(',')[1:])}",
                _support_row(record),
            )
            return True

        return await self._write(replace)

    async def cancel_support(self, owner: str, server: str, expected: SupportRecord, at: int) -> SupportRecord | None:
        async def cancel(conn: Conn) -> SupportRecord | None:
            row = await (
                await conn.execute(
                    f"SELECT {_SUPPORT} FROM server_support WHERE server = %s AND owner = %s FOR UPDATE",
                    (server, owner),
                )
            ).fetchone()
            if row is None or _support(row) != expected:
                return None
            await conn.execute("UPDATE server_support SET cancelled_at = %s WHERE server = %s", (at, server))
            return SupportRecord(expected.server, expected.owner, expected.plan, expected.start, expected.end, at)

        return await self._write(cancel)

    # -- reservations ---------------------------------------------------------------------------
    async def insert_reservation(
        self, owner: str, server: str, term: ReservedTerm, plan: tuple[int, str], now: int
    ) -> ReservedRecord:
        async def insert(conn: Conn) -> ReservedRecord:
            await lock(conn, "reservations", server)  # terms chain: the last end is read and extended alone
            last = await (
                await conn.execute("SELECT max(end_at) FROM server_reservations WHERE server = %s", (server,))
            ).fetchone()
            start = max(now, (last[0] if last else None) or 0)
            end = add_months(start, term.months)
            row = await (
                await conn.execute(
                    f"INSERT INTO server_reservations ({_RESERVED.removeprefix('id, ')})"
                    f" VALUES ({', '.join(['%s'] * 9)}) RETURNING {_RESERVED}",
                    (server, owner, term.id, term.months, plan[0], plan[1], term.discount, start, end),
                )
            ).fetchone()
            assert row is not None
            return _reserved(row)

        return await self._write(insert)

    async def reservations(self, owner: str, server: str) -> list[ReservedRecord]:
        rows = await self._all(
            f"SELECT {_RESERVED} FROM server_reservations WHERE server = %s AND owner = %s ORDER BY id", (server, owner)
        )
        return [_reserved(row) for row in rows]

    async def reserved_until(self, server: str) -> int | None:
        row = await self._one("SELECT max(end_at) FROM server_reservations WHERE server = %s", (server,))
        return row[0] if row else None
