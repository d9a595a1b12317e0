"""Drives: visible to their owner and to the users among their readers."""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from elastic_api.model.drive import Drive, IoCounts, stored_drive
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.job import IMAGE
from elastic_api.store.sqlite.engine import SqliteEngine, after_marker
from elastic_api.store.sqlite.jobs import job_row, last_error, pending_job_json


_DRIVE_COLUMNS = (
    "d.id, d.owner, d.name, d.size, d.format, d.claim_type, d.encryption, d.tier, d.keys, d.created,"
    " d.read_bytes, d.read_requests, d.write_bytes, d.write_requests,"
    f" {pending_job_json('d.id', IMAGE)}, {last_error('d.id', IMAGE)},"
    " (SELECT group_concat(r.reader, ' ') FROM drive_readers r WHERE r.drive = d.id),"
    " (SELECT group_concat(server, ' ') FROM (SELECT DISTINCT c.server FROM server_claims c"
    "  WHERE c.drive = d.id ORDER BY c.server)), d.wrapped_key"
)
# A drive is visible to a user who owns it or is among its readers (directly or as all users).
_VISIBLE = (
    "(d.owner = :user OR EXISTS (SELECT 1 FROM drive_readers r WHERE r.drive = d.id AND r.reader IN (:user, :all)))"
)

# One drive a user sees; made once (every `info` runs it: a string built per call is hashed anew
# for sqlite3's statement cache).
_GET_DRIVE = f"SELECT {_DRIVE_COLUMNS} FROM drives d WHERE d.id = :id AND {_VISIBLE}"


def _drive(row: tuple[Any, ...]) -> Drive:
    keys = json.loads(row[8])
    return stored_drive(
        dict(
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
            image_job=job_row(json.loads(row[14])) if row[14] else None,
            imaging_error=row[15],
            readers=tuple(sorted(row[16].split())) if row[16] else (),
            claimed=tuple(row[17].split()) if row[17] else (),
            wrapped_key=row[18],
        )
    )


# A page of the drives a user sees, costing what the page holds: the next `limit` of the user's
# own drives straight from the owner index (owner, created, id) after the marker, and the next
# `limit` of those shared with them (reader index), merged here by (created, id). (A page used to
# gather every visible drive, sort them all and keep `limit`: with 10,000 drives, a page of 100
# cost half of the whole list. One SQL UNION of the two costs a dozen times the two statements:
# SQLite sorts the union in temporary b-trees.)
def _pages(columns: str, *, after: bool) -> tuple[str, str]:
    marker = " AND (d.created, d.id) > (:created, :id)" if after else ""
    return (
        f"SELECT {columns}, d.created FROM drives d WHERE d.owner = :user{marker}"
        " ORDER BY d.created, d.id LIMIT :limit",
        f"SELECT {columns}, d.created FROM drive_readers r JOIN drives d ON d.id = r.drive"
        f" WHERE r.reader IN (:user, :all){marker} ORDER BY d.created, d.id LIMIT :limit",
    )


LIST_DRIVES = _pages(_DRIVE_COLUMNS, after=False)
LIST_DRIVE_IDS = _pages("d.id", after=False)
_PAGES = {
    (columns, after): _pages(columns, after=after) for columns in (_DRIVE_COLUMNS, "d.id") for after in (False, True)
}


def _merge(own: list[Any], shared: list[Any], limit: int | None) -> list[Any]:
    """Two pages ordered by (created, id), each row ending in its creation time, as one (a drive
    both owned and shared appears once), without that last column."""
    if not shared:  # nearly always: nothing shared with the user, the own page is the page
        return [row[:-1] for row in (own if limit is None else own[:limit])]
    page: list[Any] = []
    seen: set[str] = set()
    for row in heapq.merge(own, shared, key=lambda row: (row[-1], row[0])):
        if row[0] in seen:
            continue
        seen.add(row[0])
        page.append(row[:-1])
        if limit is not None and len(page) >= limit:
            break
    return page


def _keys(drive: Drive) -> str:
    return json.dumps({"tags": list(drive.tags), "avoid": list(drive.avoid), "user": drive.user_keys})


class DriveRows(SqliteEngine):
    """Drives, their readers and I/O counters (their imaging state is their jobs'; see jobs.py)."""

    def _set_readers(self, db: sqlite3.Connection, drive: Drive) -> None:
        db.execute("DELETE FROM drive_readers WHERE drive = ?", (drive.drive,))
        db.executemany(
            "INSERT INTO drive_readers (drive, reader) VALUES (?, ?)",
            [(drive.drive, reader) for reader in drive.readers],
        )

    async def insert_drive(self, drive: Drive) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, keys,"
                " created, wrapped_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            self._set_readers(db, drive)

        await self._write(insert)

    def _get_drive(self, user: str, drive: str, db: sqlite3.Connection | None = None) -> Drive | None:
        row = (db or self.db).execute(_GET_DRIVE, {"id": drive, "user": user, "all": ALL_USERS}).fetchone()
        return _drive(row) if row else None

    async def get_drive(self, user: str, drive: str) -> Drive | None:
        return await self._read_cached(("drive", user, drive), lambda db: self._get_drive(user, drive, db))

    def _drive_page(
        self, db: sqlite3.Connection, columns: str, user: str, limit: int | None, marker: str | None
    ) -> list[Any]:
        params: dict[str, Any] = {"user": user, "all": ALL_USERS, "limit": -1 if limit is None else limit}
        # The marker's place only (a visible drive's creation time and ID), not its whole row.
        found = (
            db.execute(
                f"SELECT d.created, d.id FROM drives d WHERE d.id = :id AND {_VISIBLE}",
                {"id": marker, "user": user, "all": ALL_USERS},
            ).fetchone()
            if marker
            else None
        )
        after = after_marker(marker, (found[0], found[1]) if found else None, params, "")
        own, shared = _PAGES[columns, bool(after)]
        return _merge(db.execute(own, params).fetchall(), db.execute(shared, params).fetchall(), limit)

    async def list_drives(self, user: str, limit: int | None, marker: str | None) -> list[Drive]:
        return await self._read(
            lambda db: [_drive(row) for row in self._drive_page(db, _DRIVE_COLUMNS, user, limit, marker)],
            limit,
            statements=3,
        )

    async def list_drive_ids(self, user: str, limit: int | None, marker: str | None) -> list[str]:
        return await self._read(
            lambda db: [row[0] for row in self._drive_page(db, "d.id", user, limit, marker)], limit, statements=3
        )

    async def update_drive(self, user: str, drive: Drive) -> bool:
        def update(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE drives SET name = ?, size = ?, claim_type = ?, keys = ? WHERE id = ? AND owner = ?",
                (drive.name, drive.size, drive.claim_type, _keys(drive), drive.drive, user),
            )
            if cursor.rowcount != 1:
                return False
            self._set_readers(db, drive)
            return True

        return await self._write(update)

    async def delete_drive(self, user: str, drive: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM drives WHERE id = ? AND owner = ?", (drive, user)).rowcount == 1

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
        await self._execute(
            "UPDATE drives AS d SET read_bytes = read_bytes + :rb, read_requests = read_requests + :rr,"
            " write_bytes = write_bytes + :wb, write_requests = write_requests + :wr"
            f" WHERE d.id = :id AND {_VISIBLE}",
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
        rows = [
            {"rb": c.read_bytes, "rr": c.read_requests, "wb": c.write_bytes, "wr": c.write_requests, "id": d}
            for d, c in sorted(counts.items())
        ]
        if not rows:
            return

        def add(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE drives SET read_bytes = read_bytes + :rb, read_requests = read_requests + :rr,"
                " write_bytes = write_bytes + :wb, write_requests = write_requests + :wr WHERE id = :id",
                rows,
            )

        await self._write(add)

    async def some_wrapped_key(self) -> tuple[str, bytes] | None:
        def one() -> tuple[str, bytes] | None:
            row = self.db.execute(
                "SELECT id, wrapped_key FROM drives WHERE wrapped_key IS NOT NULL ORDER BY created LIMIT 1"
            ).fetchone()
            return (row[0], bytes(row[1])) if row else None

        return await self._run(one)

    async def all_drive_ids(self) -> set[str]:
        return await self._run(lambda: {row[0] for row in self.db.execute("SELECT id FROM drives")})
