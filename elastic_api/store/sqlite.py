"""The embedded SQLite store: WAL, synchronous=FULL, foreign keys, one connection on one thread."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from elastic_api.errors import BusyError, FullError, MissingError, UsageError
from elastic_api.model.drive import Drive
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.image import ImageJob, StandardImage
from elastic_api.model.quota import Usage
from elastic_api.model.resource import IP, Lease, Resource, first_free
from elastic_api.model.server import parse_config, to_props
from elastic_api.model.server_record import ACTIVE, STOPPED, Claim, ServerRecord
from elastic_api.store.migrations import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)


def _is_full(error: BaseException) -> bool:
    """SQLite's "database or disk is full" (SQLITE_FULL, with any extended code)."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def _full() -> FullError:
    return FullError("the metadata disk is full: destroy drives or servers to free space")

_DRIVE_COLUMNS = (
    "d.id, d.owner, d.name, d.size, d.format, d.claim_type, d.encryption, d.tier, d.keys, d.created,"
    " d.read_bytes, d.read_requests, d.write_bytes, d.write_requests, d.imaging, d.imaging_error,"
    " (SELECT group_concat(r.reader, ' ') FROM drive_readers r WHERE r.drive = d.id),"
    " (SELECT group_concat(server, ' ') FROM (SELECT DISTINCT c.server FROM server_claims c"
    "  WHERE c.drive = d.id ORDER BY c.server)), d.wrapped_key"
)
# A drive is visible to a user who owns it or is among its readers (directly or as all users).
_VISIBLE = (
    "(d.owner = :user OR EXISTS (SELECT 1 FROM drive_readers r"
    " WHERE r.drive = d.id AND r.reader IN (:user, :all)))"
)


def _drive(row: tuple[Any, ...]) -> Drive:
    keys = json.loads(row[8])
    return Drive(
        drive=row[0], owner=row[1], name=row[2], size=row[3], format=row[4], claim_type=row[5],
        encryption=row[6], tier=row[7], created=row[9],
        tags=tuple(keys.get("tags", ())), avoid=tuple(keys.get("avoid", ())),
        user_keys=dict(keys.get("user", {})),
        read_bytes=row[10], read_requests=row[11], write_bytes=row[12], write_requests=row[13],
        imaging=row[14], imaging_error=row[15],
        readers=tuple(sorted(row[16].split())) if row[16] else (),
        claimed=tuple(row[17].split()) if row[17] else (),
        wrapped_key=row[18],
    )


# The drives a user sees, found through the owner and reader indexes: `_VISIBLE` as a WHERE
# clause would read every drive in the system for each list.
_VISIBLE_DRIVES = (
    "FROM drives d WHERE d.id IN (SELECT id FROM drives WHERE owner = :user"
    " UNION SELECT drive FROM drive_readers WHERE reader IN (:user, :all))"
)
LIST_DRIVES = f"SELECT {_DRIVE_COLUMNS} {_VISIBLE_DRIVES}"
LIST_DRIVE_IDS = f"SELECT d.id {_VISIBLE_DRIVES}"


def _after(marker: str | None, found: tuple[int, str] | None, params: dict[str, Any], key: str) -> str:
    """The clause that starts a page after its marker (creation time, then ID), or none; a marker
    the user cannot see is unknown, whether it exists or not."""
    if marker is None:
        return ""
    if found is None:
        raise UsageError(f"unknown marker: {marker}")
    params.update(created=found[0], id=found[1])
    return f"{key} > (:created, :id)"


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; its transaction committed or failed regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
def _statements(script: str) -> list[str]:
    """A migration's statements, split at the semicolons that end one (a trigger's body holds more)."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        raise RuntimeError(f"incomplete statement in a migration: {pending.strip()[:60]}")
    return statements


def _keys(drive: Drive) -> str:
    return json.dumps({"tags": list(drive.tags), "avoid": list(drive.avoid), "user": drive.user_keys})


class SqliteStore:
    """All SQL runs on one worker thread, so the event loop never waits on a disk sync and
    writes are serialised without SQLite's busy loop.

    Writes commit in groups: a transaction that arrives while the thread is busy (usually
    syncing the previous commit) waits with the others, and the next COMMIT, one disk sync,
    makes them all durable. Each runs inside its own SAVEPOINT, so one that fails rolls back
    alone, and none is answered before the COMMIT that holds it: durability and atomicity are
    those of a transaction each, at the cost of one sync per group instead of one per write."""

    def __init__(self, path: Path, *, reserve: int = 0) -> None:
        self.path = path
        # A file of `reserve` bytes beside the database, given up when a destroy finds the disk
        # full: SQLite needs room (WAL frames) to delete a row, and destroying is how a user frees
        # space. Taken back by the first write that finds room again.
        self.reserve = reserve
        self.reserve_path = path.with_name(path.name + ".reserve")
        self._reserve_held = False
        self._reserve_retry = 0.0  # monotonic time of the next try to take it back
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._pending_lock = threading.Lock()
        self._flush_queued = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, freeing: bool = False) -> T:
        """Run fn in a write transaction of its own, committed with whatever others are waiting.
        A full disk is FullError; a `freeing` write (a destroy) that finds it full gives up the
        reserve and tries once more."""
        try:
            return await self._queue(fn)
        except sqlite3.Error as e:
            if not _is_full(e):
                raise
        if not (freeing and await self._run(self._release_reserve)):
            raise _full()
        try:
            return await self._queue(fn)
        except sqlite3.Error as e:
            if _is_full(e):
                raise _full() from None
            raise
        finally:
            self._reserve_retry = 0.0  # the next commit takes it back, if the destroy freed room

    async def _queue(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, future))
            queue_flush, self._flush_queued = not self._flush_queued, True
        if queue_flush:
            loop.run_in_executor(self._thread, self._flush, loop)
        return await future

    async def _execute(self, sql: str, params: Any = ()) -> int:
        """One statement as a write transaction; the rows it changed."""
        return await self._write(lambda db: db.execute(sql, params).rowcount)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._pending_lock:
            batch, self._pending, self._flush_queued = self._pending, [], False
        if self.reserve and not self._reserve_held and time.monotonic() >= self._reserve_retry:
            self._take_reserve()  # before the writes: space a destroy freed goes to the reserve first
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                self.db.execute("SAVEPOINT write")
                try:
                    result = fn(self.db)
                except Exception as e:
                    self.db.execute("ROLLBACK TO write")
                    self.db.execute("RELEASE write")
                    outcomes.append((future, None, e))
                else:
                    self.db.execute("RELEASE write")
                    outcomes.append((future, result, None))
            self.db.execute("COMMIT")
        except BaseException as e:
            # The group could not commit (disk full, I/O error): none of it happened.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            outcomes = [(future, None, e) for _, future in batch]
        for future, result, error in outcomes:
            loop.call_soon_threadsafe(_settle, future, result, error)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store is not open"
        return self._db

    # -- the reserve ---------------------------------------------------------------------------
    def _take_reserve(self) -> None:
        """Make the reserve file, if the disk has room for it (a partial one is removed)."""
        temporary = self.reserve_path.with_name(self.reserve_path.name + ".new")
        try:
            with contextlib.suppress(FileNotFoundError):
                if self.reserve_path.stat().st_size >= self.reserve:
                    self._reserve_held = True
                    return
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve)  # real blocks, not a sparse promise
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.reserve_path)
        except OSError as e:
            temporary.unlink(missing_ok=True)
            self._reserve_retry = time.monotonic() + 5  # a full disk: not a failed syscall per commit
            log.warning("no room for the database's reserve file %s (%s): a destroy on a full disk "
                        "may fail until space is freed", self.reserve_path, e.strerror)
            return
        self._reserve_held = True

    def _release_reserve(self) -> bool:
        """Give up the reserve; False when there was none to give."""
        if not self._reserve_held:
            return False
        self.reserve_path.unlink(missing_ok=True)
        self._reserve_held = False
        self._reserve_retry = float("inf")  # not before the destroy that needs the room has committed
        log.warning("the metadata disk is full: released the reserve file %s so a destroy can "
                    "commit; it comes back once there is room", self.reserve_path)
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        self._db = db
        self._migrate()
        if self.reserve:
            self._take_reserve()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this program ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[version:], version + 1):
            # executescript would commit on its own; run each migration inside one transaction.
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    async def integrity_check(self) -> str:
        return await self._run(lambda: self.db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- users ------------------------------------------------------------------------------
    async def create_user(self, user: str, name: str, secret_hash: bytes, created: int) -> None:
        await self._execute("INSERT INTO users (id, name, secret_hash, created) VALUES (?, ?, ?, ?)",
                            (user, name, secret_hash, created))

    async def user_secret_hash(self, user: str) -> bytes | None:
        def query() -> bytes | None:
            row = self.db.execute("SELECT secret_hash FROM users WHERE id = ?", (user,)).fetchone()
            return bytes(row[0]) if row else None

        return await self._run(query)

    # -- quotas -----------------------------------------------------------------------------
    async def quota_overrides(self, user: str) -> dict[str, int | None]:
        return await self._run(self._overrides, user)

    async def set_quota_overrides(self, user: str, values: dict[str, int | None],
                                  cleared: list[str]) -> bool:
        def change(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM users WHERE id = ?", (user,)).fetchone() is None:
                return False
            db.executemany("INSERT INTO quotas (owner, key, value) VALUES (?, ?, ?)"
                           " ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                           [(user, key, value) for key, value in values.items()])
            db.executemany("DELETE FROM quotas WHERE owner = ? AND key = ?", [(user, key) for key in cleared])
            return True

        return await self._write(change)

    def _overrides(self, user: str) -> dict[str, int | None]:
        return {str(key): value for key, value in
                self.db.execute("SELECT key, value FROM quotas WHERE owner = ?", (user,)).fetchall()}

    async def quota_state(self, user: str) -> tuple[dict[str, int | None], Usage]:
        return await self._run(lambda: (self._overrides(user), self._usage(user)))

    async def usage(self, user: str) -> Usage:
        return await self._run(self._usage, user)

    def _usage(self, user: str) -> Usage:
        drives, drive_bytes = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM drives WHERE owner = ?", (user,)).fetchone()
        servers, cpu, mem = self.db.execute(
            "SELECT count(*),"
            " coalesce(sum(CASE WHEN status = :active THEN CAST(json_extract(config, '$.cpu') AS INTEGER) END), 0),"
            " coalesce(sum(CASE WHEN status = :active THEN CAST(json_extract(config, '$.mem') AS INTEGER) END), 0)"
            " FROM servers WHERE owner = :user", {"user": user, "active": ACTIVE}).fetchone()
        ips, = self.db.execute("SELECT count(*) FROM resources WHERE owner = ? AND type = 'ip'",
                               (user,)).fetchone()
        return Usage(drive_bytes=int(drive_bytes), drives=int(drives), servers=int(servers),
                     cpu=int(cpu), mem=int(mem), ips=int(ips))

    # -- drives -----------------------------------------------------------------------------
    def _set_readers(self, db: sqlite3.Connection, drive: Drive) -> None:
        db.execute("DELETE FROM drive_readers WHERE drive = ?", (drive.drive,))
        db.executemany("INSERT INTO drive_readers (drive, reader) VALUES (?, ?)",
                       [(drive.drive, reader) for reader in drive.readers])

    async def insert_drive(self, drive: Drive) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, keys,"
                " created, wrapped_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (drive.drive, drive.owner, drive.name, drive.size, drive.format, drive.claim_type,
                 drive.encryption, drive.tier, _keys(drive), drive.created, drive.wrapped_key),
            )
            self._set_readers(db, drive)

        await self._write(insert)

    def _get_drive(self, user: str, drive: str) -> Drive | None:
        row = self.db.execute(
            f"SELECT {_DRIVE_COLUMNS} FROM drives d WHERE d.id = :id AND {_VISIBLE}",
            {"id": drive, "user": user, "all": ALL_USERS},
        ).fetchone()
        return _drive(row) if row else None

    async def get_drive(self, user: str, drive: str) -> Drive | None:
        return await self._run(self._get_drive, user, drive)

    def _drive_page(self, select: str, user: str, limit: int | None, marker: str | None) -> list[Any]:
        params: dict[str, Any] = {"user": user, "all": ALL_USERS, "limit": -1 if limit is None else limit}
        found = self._get_drive(user, marker) if marker else None
        after = _after(marker, (found.created, found.drive) if found else None, params, "AND (d.created, d.id)")
        return self.db.execute(f"{select} {after} ORDER BY d.created, d.id LIMIT :limit", params).fetchall()

    async def list_drives(self, user: str, limit: int | None, marker: str | None) -> list[Drive]:
        return await self._run(lambda: [_drive(row) for row in self._drive_page(LIST_DRIVES, user, limit, marker)])

    async def list_drive_ids(self, user: str, limit: int | None, marker: str | None) -> list[str]:
        return await self._run(lambda: [row[0] for row in self._drive_page(LIST_DRIVE_IDS, user, limit, marker)])

    async def update_drive(self, user: str, drive: Drive) -> bool:
        def update(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE drives SET name = ?, size = ?, claim_type = ?, keys = ?, imaging = ?,"
                " imaging_error = ? WHERE id = ? AND owner = ?",
                (drive.name, drive.size, drive.claim_type, _keys(drive), drive.imaging,
                 drive.imaging_error, drive.drive, user),
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

    async def count_drive_io(self, user: str, drive: str, *, read_bytes: int = 0, read_requests: int = 0,
                             write_bytes: int = 0, write_requests: int = 0) -> None:
        await self._execute(
            "UPDATE drives AS d SET read_bytes = read_bytes + :rb, read_requests = read_requests + :rr,"
            " write_bytes = write_bytes + :wb, write_requests = write_requests + :wr"
            f" WHERE d.id = :id AND {_VISIBLE}",
            {"rb": read_bytes, "rr": read_requests, "wb": write_bytes, "wr": write_requests,
             "id": drive, "user": user, "all": ALL_USERS},
        )

    async def some_wrapped_key(self) -> tuple[str, bytes] | None:
        def one() -> tuple[str, bytes] | None:
            row = self.db.execute("SELECT id, wrapped_key FROM drives WHERE wrapped_key IS NOT NULL"
                                  " ORDER BY created LIMIT 1").fetchone()
            return (row[0], bytes(row[1])) if row else None
        return await self._run(one)

    async def all_drive_ids(self) -> set[str]:
        return await self._run(lambda: {row[0] for row in self.db.execute("SELECT id FROM drives")})

    async def set_imaging(self, user: str, drive: str, imaging: str | None, error: str | None) -> None:
        await self._execute("UPDATE drives SET imaging = ?, imaging_error = ? WHERE id = ? AND owner = ?",
                            (imaging, error, drive, user))

    # -- standard images ---------------------------------------------------------------------
    async def insert_image(self, image: StandardImage) -> None:
        await self._execute("INSERT INTO images (id, name, size, created) VALUES (?, ?, ?, ?)",
                            (image.image, image.name, image.size, image.created))

    def _get_image(self, image: str) -> StandardImage | None:
        row = self.db.execute("SELECT id, name, size, created FROM images WHERE id = ?", (image,)).fetchone()
        return StandardImage(*row) if row else None

    async def get_image(self, image: str) -> StandardImage | None:
        return await self._run(self._get_image, image)

    async def list_images(self, limit: int | None, marker: str | None) -> list[StandardImage]:
        def query() -> list[StandardImage]:
            params: dict[str, Any] = {"limit": -1 if limit is None else limit}
            found = self._get_image(marker) if marker else None
            after = _after(marker, (found.created, found.image) if found else None, params, "WHERE (created, id)")
            rows = self.db.execute(
                f"SELECT id, name, size, created FROM images {after} ORDER BY created, id LIMIT :limit", params
            ).fetchall()
            return [StandardImage(*row) for row in rows]

        return await self._run(query)

    async def delete_image(self, image: str) -> bool:
        return await self._execute("DELETE FROM images WHERE id = ?", (image,)) == 1

    # -- image jobs ---------------------------------------------------------------------------
    async def add_image_job(self, user: str, drive: str, source: str, conversion: str) -> ImageJob | None:
        def add(db: sqlite3.Connection) -> ImageJob | None:
            cursor = db.execute(
                "INSERT INTO image_jobs (drive, owner, source, conversion)"
                " SELECT :drive, :user, :source, :conversion"
                " WHERE EXISTS (SELECT 1 FROM drives WHERE id = :drive AND owner = :user)",
                {"drive": drive, "user": user, "source": source, "conversion": conversion},
            )
            if cursor.rowcount != 1:
                return None
            # A new job is queued until the runner reports progress; a failure's mark is cleared.
            db.execute("UPDATE drives SET imaging = coalesce(imaging, 'queued'), imaging_error = NULL"
                       " WHERE id = ?", (drive,))
            return ImageJob(int(cursor.lastrowid or 0), drive, user, source, conversion)

        return await self._write(add)

    async def image_jobs(self, user: str, drive: str) -> list[ImageJob]:
        rows = await self._run(lambda: self.db.execute(
            "SELECT id, drive, owner, source, conversion FROM image_jobs WHERE drive = ? AND owner = ?"
            " ORDER BY id", (drive, user)).fetchall())
        return [ImageJob(*row) for row in rows]

    async def finish_image_job(self, user: str, job: int, imaging: str | None, error: str | None) -> None:
        def finish(db: sqlite3.Connection) -> None:
            row = db.execute("DELETE FROM image_jobs WHERE id = ? AND owner = ? RETURNING drive",
                             (job, user)).fetchone()
            if row:
                db.execute("UPDATE drives SET imaging = ?, imaging_error = ? WHERE id = ? AND owner = ?",
                           (imaging, error, row[0], user))

        await self._write(finish)

    async def all_image_jobs(self) -> list[ImageJob]:
        rows = await self._run(lambda: self.db.execute(
            "SELECT id, drive, owner, source, conversion FROM image_jobs ORDER BY id").fetchall())
        return [ImageJob(*row) for row in rows]

    # -- servers ------------------------------------------------------------------------------
    _SERVER_COLUMNS = "id, owner, config, created, status, host, started"

    @staticmethod
    def _server(row: tuple[Any, ...]) -> ServerRecord:
        return ServerRecord(server=row[0], owner=row[1], config=parse_config(json.loads(row[2]), row[0], stored=True),
                            created=row[3], status=row[4], host=row[5], started=row[6])

    async def insert_server(self, record: ServerRecord) -> None:
        await self._execute(
            "INSERT INTO servers (id, owner, config, created, status) VALUES (?, ?, ?, ?, ?)",
            (record.server, record.owner, json.dumps(to_props(record.config)), record.created, record.status),
        )

    def _get_server(self, user: str, server: str) -> ServerRecord | None:
        row = self.db.execute(f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE id = ? AND owner = ?",
                              (server, user)).fetchone()
        return self._server(row) if row else None

    async def get_server(self, user: str, server: str) -> ServerRecord | None:
        return await self._run(self._get_server, user, server)

    async def list_servers(self, user: str, limit: int | None, marker: str | None) -> list[ServerRecord]:
        def query() -> list[ServerRecord]:
            params: dict[str, Any] = {"user": user, "limit": -1 if limit is None else limit}
            found = self._get_server(user, marker) if marker else None
            after = _after(marker, (found.created, found.server) if found else None, params, "AND (created, id)")
            rows = self.db.execute(
                f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE owner = :user {after}"
                " ORDER BY created, id LIMIT :limit", params).fetchall()
            return [self._server(row) for row in rows]

        return await self._run(query)

    async def update_server_config(self, user: str, record: ServerRecord) -> bool:
        updated = await self._execute("UPDATE servers SET config = ? WHERE id = ? AND owner = ?",
                                      (json.dumps(to_props(record.config)), record.server, user))
        return updated == 1

    async def delete_server(self, user: str, server: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM servers WHERE id = ? AND owner = ?", (server, user)).rowcount == 1

        return await self._write(delete, freeing=True)

    async def activate_server(self, user: str, server: str, host: str, started: int,
                              claims: list[Claim]) -> None:
        """Claim the drives and mark the server active, or BusyError and nothing changes: a drive
        being imaged, or an exclusive drive another server holds (or holding one exclusively that
        another server shares), cannot be claimed."""
        def activate(db: sqlite3.Connection) -> None:
            for claim in claims:
                row = db.execute("SELECT claim_type, imaging FROM drives WHERE id = ?", (claim.drive,)).fetchone()
                if row is None:
                    raise BusyError(f"drive {claim.drive} is gone")
                if row[1] is not None:
                    raise BusyError(f"drive {claim.drive} is being imaged")
                others = [r[0] for r in db.execute(
                    "SELECT DISTINCT server FROM server_claims WHERE drive = ? AND server != ?",
                    (claim.drive, server))]
                if others and row[0] == "exclusive":
                    raise BusyError(f"drive {claim.drive} is claimed exclusively by {' '.join(others)}")
            updated = db.execute(
                "UPDATE servers SET status = ?, host = ?, started = ? WHERE id = ? AND owner = ? AND status = ?",
                (ACTIVE, host, started, server, user, STOPPED)).rowcount
            if updated != 1:
                raise BusyError(f"server {server} is already active")
            db.executemany("INSERT INTO server_claims (server, device, drive) VALUES (?, ?, ?)",
                           [(server, c.device, c.drive) for c in claims])

        await self._write(activate)

    async def deactivate_server(self, user: str, server: str) -> bool:
        """Release the server's claims and mark it stopped; False when it was not active."""
        def deactivate(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM server_claims WHERE server = ?", (server,))
            db.execute("DELETE FROM ip_leases WHERE server = ?", (server,))
            return db.execute(
                "UPDATE servers SET status = ?, host = NULL, started = NULL WHERE id = ? AND owner = ?"
                " AND status = ?", (STOPPED, server, user, ACTIVE)).rowcount == 1

        return await self._write(deactivate)

    async def active_servers(self) -> list[ServerRecord]:
        """Maintenance: every active server, whoever owns it (start-up reconciliation, events)."""
        rows = await self._run(lambda: self.db.execute(
            f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE status = ?", (ACTIVE,)).fetchall())
        return [self._server(row) for row in rows]

    async def all_servers(self) -> list[ServerRecord]:
        """Maintenance: every server, whoever owns it, active or not (what this installation owns
        on a libvirtd it may share: adopting domains from before installation IDs, knowing its
        NICs' MACs among the public network's reservations)."""
        rows = await self._run(lambda: self.db.execute(
            f"SELECT {self._SERVER_COLUMNS} FROM servers ORDER BY created, id").fetchall())
        return [self._server(row) for row in rows]

    async def server_owner(self, server: str) -> str | None:
        """Maintenance: who owns a server a hypervisor event names."""
        row = await self._run(lambda: self.db.execute("SELECT owner FROM servers WHERE id = ?",
                                                      (server,)).fetchone())
        return str(row[0]) if row else None

    # -- resources (static IPs and VLANs) and the addresses servers lease -----------------------
    _RESOURCE_COLUMNS = "id, type, owner, name, keys, created"
    # The keys of a server configuration that name a resource of each type.
    _REFERENCES = {
        "ip": "(j.key LIKE 'nic:%:dhcp' OR j.key = 'vnc')",
        "vlan": "j.key LIKE 'nic:%:vlan'",
    }

    @staticmethod
    def _resource(row: tuple[Any, ...]) -> Resource:
        keys = json.loads(row[4])
        return Resource(resource=row[0], type=row[1], owner=row[2], name=row[3],
                        tags=tuple(keys.get("tags", ())), user_keys=dict(keys.get("user", {})), created=row[5])

    @staticmethod
    def _resource_keys(resource: Resource) -> str:
        return json.dumps({"tags": list(resource.tags), "user": resource.user_keys})

    def _insert_resource(self, db: sqlite3.Connection, resource: Resource) -> None:
        db.execute(f"INSERT INTO resources ({self._RESOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                   (resource.resource, resource.type, resource.owner, resource.name,
                    self._resource_keys(resource), resource.created))

    def _used_addresses(self, db: sqlite3.Connection) -> set[str]:
        """Addresses that are someone's IP resource or held by a NIC."""
        return {row[0] for row in db.execute(
            "SELECT id FROM resources WHERE type = 'ip' UNION SELECT ip FROM ip_leases")}

    async def insert_resource(self, resource: Resource) -> None:
        await self._write(lambda db: self._insert_resource(db, resource))

    async def insert_ip_from_pool(self, resource: Resource, first: str, last: str) -> Resource | None:
        """The IP resource with the lowest free address of first-last as its ID, or None when none
        is free (the pick and the insert are one transaction)."""
        def insert(db: sqlite3.Connection) -> Resource | None:
            address = first_free(first, last, self._used_addresses(db))
            if address is None:
                return None
            chosen = dataclasses.replace(resource, resource=address, type=IP)
            self._insert_resource(db, chosen)
            return chosen

        return await self._write(insert)

    def _get_resource(self, user: str, resource: str, type_: str | None = None) -> Resource | None:
        row = self.db.execute(
            f"SELECT {self._RESOURCE_COLUMNS} FROM resources WHERE id = ? AND owner = ? AND type = coalesce(?, type)",
            (resource, user, type_)).fetchone()
        return self._resource(row) if row else None

    async def get_resource(self, user: str, type_: str, resource: str) -> Resource | None:
        return await self._run(self._get_resource, user, resource, type_)

    async def list_resources(self, user: str, type_: str | None, limit: int | None,
                             marker: str | None) -> list[Resource]:
        def query() -> list[Resource]:
            params: dict[str, Any] = {"user": user, "type": type_, "limit": -1 if limit is None else limit}
            found = self._get_resource(user, marker, type_) if marker else None
            after = _after(marker, (found.created, found.resource) if found else None, params, "AND (created, id)")
            rows = self.db.execute(
                f"SELECT {self._RESOURCE_COLUMNS} FROM resources WHERE owner = :user"
                f" AND type = coalesce(:type, type) {after} ORDER BY created, id LIMIT :limit", params).fetchall()
            return [self._resource(row) for row in rows]

        return await self._run(query)

    async def update_resource(self, user: str, resource: Resource) -> bool:
        return await self._execute(
            "UPDATE resources SET name = ?, keys = ? WHERE id = ? AND owner = ? AND type = ?",
            (resource.name, self._resource_keys(resource), resource.resource, user, resource.type)) == 1

    async def delete_resource(self, user: str, type_: str, resource: str) -> bool:
        """Remove the user's resource; False when there is none. BusyError, and nothing changes,
        while one of the user's servers (active or stopped) names it or a NIC holds it."""
        def delete(db: sqlite3.Connection) -> bool:
            if self._get_resource(user, resource, type_) is None:
                return False
            users = [row[0] for row in db.execute(
                f"SELECT DISTINCT s.id FROM servers s, json_each(s.config) j WHERE s.owner = ?"
                f" AND {self._REFERENCES[type_]} AND j.value = ? ORDER BY s.id", (user, resource))]
            users += [row[0] for row in db.execute("SELECT server FROM ip_leases WHERE resource = ?", (resource,))]
            if users:
                raise BusyError(f"{type_} {resource} is used by server {' '.join(dict.fromkeys(users))}")
            return db.execute("DELETE FROM resources WHERE id = ? AND owner = ? AND type = ?",
                              (resource, user, type_)).rowcount == 1

        return await self._write(delete, freeing=True)

    @staticmethod
    def _lease(row: tuple[Any, ...]) -> Lease:
        return Lease(server=row[0], nic=row[1], mac=row[2], ip=row[3], auto=row[4] is None)

    async def lease_ips(self, user: str, server: str, static: list[tuple[int, str, str]],
                        auto: list[tuple[int, str]], first: str, last: str) -> list[Lease]:
        """Give the user's server its addresses in one transaction, or none of them: each
        (nic, mac, ip) of `static` its IP resource, each (nic, mac) of `auto` the lowest free
        address of first-last. MissingError for an IP that is not the user's, BusyError for one
        another server holds, FullError when the pool has no address left."""
        def lease(db: sqlite3.Connection) -> list[Lease]:
            if db.execute("SELECT 1 FROM servers WHERE id = ? AND owner = ?", (server, user)).fetchone() is None:
                raise MissingError(f"no such server: {server}")
            # Whatever an earlier run of the server held and did not give back is given back now.
            db.execute("DELETE FROM ip_leases WHERE server = ?", (server,))
            leases = []
            for nic, mac, ip in static:
                if self._get_resource(user, ip, IP) is None:
                    raise MissingError(f"no such ip: {ip}")
                holder = db.execute("SELECT server FROM ip_leases WHERE ip = ?", (ip,)).fetchone()
                if holder is not None:
                    raise BusyError(f"ip {ip} is held by server {holder[0]}")
                db.execute("INSERT INTO ip_leases (ip, server, nic, mac, resource) VALUES (?, ?, ?, ?, ?)",
                           (ip, server, nic, mac, ip))
                leases.append(Lease(server, nic, mac, ip, auto=False))
            used = self._used_addresses(db)
            for nic, mac in auto:
                free = first_free(first, last, used)
                if free is None:
                    raise FullError(f"the IP pool has no free address for nic:{nic} of server {server}")
                used.add(free)
                db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES (?, ?, ?, ?)", (free, server, nic, mac))
                leases.append(Lease(server, nic, mac, free, auto=True))
            return leases

        try:
            return await self._write(lease)
        except sqlite3.IntegrityError:
            # Only reachable when another writer got between the look and the insert.
            raise BusyError(f"an address server {server} asked for is held by another server") from None

    async def server_leases(self, user: str, server: str) -> list[Lease]:
        rows = await self._run(lambda: self.db.execute(
            "SELECT l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l JOIN servers s ON s.id = l.server"
            " WHERE l.server = ? AND s.owner = ? ORDER BY l.nic", (server, user)).fetchall())
        return [self._lease(row) for row in rows]

    async def release_leases(self, user: str, server: str) -> None:
        await self._write(lambda db: db.execute(
            "DELETE FROM ip_leases WHERE server = (SELECT id FROM servers WHERE id = ? AND owner = ?)",
            (server, user)))

    async def active_leases(self) -> list[tuple[str, Lease]]:
        """Maintenance: (host, lease) for every address an active server holds, whoever owns it."""
        rows = await self._run(lambda: self.db.execute(
            "SELECT s.host, l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l"
            " JOIN servers s ON s.id = l.server WHERE s.status = ? ORDER BY l.ip", (ACTIVE,)).fetchall())
        return [(row[0], self._lease(row[1:])) for row in rows]

    async def drop_stale_leases(self) -> int:
        """Maintenance: forget the addresses of servers that are not active; how many went."""
        return await self._write(lambda db: db.execute(
            "DELETE FROM ip_leases WHERE server NOT IN (SELECT id FROM servers WHERE status = ?)",
            (ACTIVE,)).rowcount)

    async def all_vlan_ids(self) -> set[str]:
        """Maintenance: every VLAN's UUID regardless of owner (start-up removes other VLAN networks)."""
        return await self._run(lambda: {row[0] for row in self.db.execute(
            "SELECT id FROM resources WHERE type = 'vlan'")})
