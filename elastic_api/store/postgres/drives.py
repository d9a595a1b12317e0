"""Drives: visible to their owner and to the users among their readers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from elastic_api.model.drive import Drive, IoCounts
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.job import IMAGE
from elastic_api.store.postgres.engine import Conn, PostgresEngine, after_marker
from elastic_api.store.postgres.jobs import job_row, last_error, pending_job_json

_DRIVE_COLUMNS = (
    "d.id, d.owner, d.name, d.size, d.format, d.claim_type, d.encryption, d.tier, d.keys, d.created,"
    " d.read_bytes, d.read_requests, d.write_bytes, d.write_requests,"
    f" {pending_job_json('d.id', IMAGE)}, {last_error('d.id', IMAGE)},"
    " ARRAY(SELECT r.reader FROM drive_readers r WHERE r.drive = d.id ORDER BY r.reader),"
    " ARRAY(SELECT DISTINCT c.server FROM server_claims c WHERE c.drive = d.id ORDER BY c.server),"
    " d.wrapped_key"
)
# A drive is visible to a user who owns it or is among its readers (directly or as all users).
_VISIBLE = (
    "(d.owner = %(user)s OR EXISTS (SELECT 1 FROM drive_readers r"
    " WHERE r.drive = d.id AND r.reader IN (%(user)s, %(all)s)))"
)


def _visible_page(after: bool) -> str:
    """FROM and WHERE of one page of the drives a user sees: the next `limit` of the user's own
    (owner index, in order) and the next `limit` of those shared with them, so a page costs what
    it holds, not a sort of every drive the user sees."""
    own = " AND (o.created, o.id) > (%(m_created)s, %(m_id)s)" if after else ""
    shared = " AND (s.created, s.id) > (%(m_created)s, %(m_id)s)" if after else ""
    return (
        "FROM drives d WHERE d.id IN ("
        f"(SELECT o.id FROM drives o WHERE o.owner = %(user)s{own} ORDER BY o.created, o.id LIMIT %(limit)s)"
        " UNION (SELECT s.id FROM drive_readers r JOIN drives s ON s.id = r.drive"
        f" WHERE r.reader IN (%(user)s, %(all)s){shared} ORDER BY s.created, s.id LIMIT %(limit)s))"
    )


def _drive(row: tuple[Any, ...]) -> Drive:
    keys = row[8]  # JSONB: psycopg gives it parsed
    return Drive(
        drive=row[0],
        owner=row[1],
        name=row[2],
        size=row[3],
        format=row[4],
        claim_type=row[5],
        encryption=row[6],
        tier=row[7],
        created=row[9],
        tags=tuple(keys.get("tags", ())),
        avoid=tuple(keys.get("avoid", ())),
        user_keys=dict(keys.get("user", {})),
        read_bytes=row[10],
        read_requests=row[11],
        write_bytes=row[12],
        write_requests=row[13],
        image_job=job_row(row[14]) if row[14] else None,
        imaging_error=row[15],
        readers=tuple(row[16]),
        claimed=tuple(row[17]),
        wrapped_key=bytes(row[18]) if row[18] is not None else None,
    )


def _keys(drive: Drive) -> str:
    return json.dumps({"tags": list(drive.tags), "avoid": list(drive.avoid), "user": drive.user_keys})


async def _set_readers(conn: Conn, drive: Drive) -> None:
    await conn.execute("DELETE FROM drive_readers WHERE drive = %s", (drive.drive,))
    await conn.execute(
        "INSERT INTO drive_readers (drive, reader) SELECT %s, unnest(%s::text[])", (drive.drive, list(drive.readers))
    )


class DriveRows(PostgresEngine):
    """Drives, their readers and I/O counters (their imaging state is their jobs'; see jobs.py)."""

    async def insert_drive(self, drive: Drive) -> None:
        async def insert(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, keys,"
                " created, wrapped_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                (
                    drive.drive,
                    drive.owner,
                    drive.name,
                    drive.size,
                    drive.format,
                    drive.claim_type,
                    drive.encryption,
                    drive.tier,
                    _keys(drive),
                    drive.created,
                    drive.wrapped_key,
                ),
            )
            await _set_readers(conn, drive)

        await self._write(insert)

    @staticmethod
    async def _get_drive(conn: Conn, user: str, drive: str) -> Drive | None:
        row = await (
            await conn.execute(
                f"SELECT {_DRIVE_COLUMNS} FROM drives d WHERE d.id = %(id)s AND {_VISIBLE}",
                {"id": drive, "user": user, "all": ALL_USERS},
            )
        ).fetchone()
        return _drive(row) if row else None

    async def get_drive(self, user: str, drive: str) -> Drive | None:
        return await self._single(lambda conn: self._get_drive(conn, user, drive))

    async def _drive_page(self, select: str, user: str, limit: int | None, marker: str | None) -> list[Any]:
        async def page(conn: Conn) -> list[Any]:
            params: dict[str, Any] = {"user": user, "all": ALL_USERS, "limit": limit}
            found = None
            if marker is not None:
                found = await (
                    await conn.execute(
                        f"SELECT d.created, d.id FROM drives d WHERE d.id = %(id)s AND {_VISIBLE}",
                        {"id": marker, "user": user, "all": ALL_USERS},
                    )
                ).fetchone()
            after = after_marker(marker, (found[0], found[1]) if found else None, params, "AND (d.created, d.id)")
            return await (
                await conn.execute(
                    f"SELECT {select} {_visible_page(bool(after))} {after} ORDER BY d.created, d.id LIMIT %(limit)s",
                    params,
                )
            ).fetchall()

        return await self._read(page)

    async def list_drives(self, user: str, limit: int | None, marker: str | None) -> list[Drive]:
        rows = await self._drive_page(_DRIVE_COLUMNS, user, limit, marker)
        return [_drive(row) for row in rows]

    async def list_drive_ids(self, user: str, limit: int | None, marker: str | None) -> list[str]:
        rows = await self._drive_page("d.id", user, limit, marker)
        return [row[0] for row in rows]

    async def update_drive(self, user: str, drive: Drive) -> bool:
        async def update(conn: Conn) -> bool:
            cursor = await conn.execute(
                "UPDATE drives SET name = %s, size = %s, claim_type = %s, keys = %s::jsonb"
                " WHERE id = %s AND owner = %s",
                (drive.name, drive.size, drive.claim_type, _keys(drive), drive.drive, user),
            )
            if cursor.rowcount != 1:
                return False
            await _set_readers(conn, drive)
            return True

        return await self._write(update)

    async def delete_drive(self, user: str, drive: str) -> bool:
        async def delete(conn: Conn) -> bool:
            # A claimed drive: the claims' foreign key refuses the delete (the engine's integrity error).
            if (await conn.execute("DELETE FROM drives WHERE id = %s AND owner = %s", (drive, user))).rowcount != 1:
                return False
            # Its jobs go with it (SQLite's trigger drives_take_their_jobs).
            await conn.execute("DELETE FROM jobs WHERE resource = %s", (drive,))
            return True

        return await self._write(delete, freeing=True)

    async def count_drive_io(
        self,
        user: str,
        drive: str,
        *,
        read_bytes: int = 0,
        read_requests: int = 0,
        write_bytes: int = 0,
        write_requests: int = 0,
    ) -> None:
        # One UPDATE: its row lock makes concurrent additions add up.
        await self._execute(
            "UPDATE drives AS d SET read_bytes = read_bytes + %(rb)s, read_requests = read_requests + %(rr)s,"
            " write_bytes = write_bytes + %(wb)s, write_requests = write_requests + %(wr)s"
            f" WHERE d.id = %(id)s AND {_VISIBLE}",
            {
                "rb": read_bytes,
                "rr": read_requests,
                "wb": write_bytes,
                "wr": write_requests,
                "id": drive,
                "user": user,
                "all": ALL_USERS,
            },
        )

    async def add_drive_io(self, counts: Mapping[str, IoCounts]) -> None:
        if not counts:
            return
        ids = sorted(counts)
        columns = [
            ids,
            *(
                [getattr(counts[d], c) for d in ids]
                for c in ("read_bytes", "read_requests", "write_bytes", "write_requests")
            ),
        ]

        async def add(conn: Conn) -> None:
            # The rows locked in ID order first: two batches over the same drives cannot deadlock.
            await conn.execute("SELECT 1 FROM drives WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", (ids,))
            await conn.execute(
                "UPDATE drives d SET read_bytes = d.read_bytes + u.rb, read_requests = d.read_requests + u.rr,"
                " write_bytes = d.write_bytes + u.wb, write_requests = d.write_requests + u.wr"
                " FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::int8[], %s::int8[]) AS u(id, rb, rr, wb, wr)"
                " WHERE d.id = u.id",
                columns,
            )

        await self._write(add)

    async def all_drive_ids(self) -> set[str]:
        return {row[0] for row in await self._all("SELECT id FROM drives")}

    async def some_wrapped_key(self) -> tuple[str, bytes] | None:
        row = await self._one(
            "SELECT id, wrapped_key FROM drives WHERE wrapped_key IS NOT NULL ORDER BY created, id LIMIT 1"
        )
        return (row[0], bytes(row[1])) if row else None
