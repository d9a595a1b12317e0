"""The SQLite engine under the store: WAL, synchronous=FULL, foreign keys, one connection on one
thread; writes committed in groups, each in a savepoint of its own; the reserve file that lets a
destroy commit on a full disk; schema migrations; open, close and the integrity check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from elastic_api.errors import FullError, UsageError
from elastic_api.store.base import StoreTimer
from elastic_api.store.migrations import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)


def _is_full(error: BaseException) -> bool:
    """SQLite's "database or disk is full" (SQLITE_FULL, with any extended code)."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def _full() -> FullError:
    return FullError("the metadata disk is full: destroy drives or servers to free space")


def after_marker(marker: str | None, found: tuple[int, str] | None, params: dict[str, Any], key: str) -> str:
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


class SqliteEngine:
    """All SQL runs on one worker thread, so the event loop never waits on a disk sync and
    writes are serialised without SQLite's busy loop.

    Writes commit in groups: a transaction that arrives while the thread is busy (usually
    syncing the previous commit) waits with the others, and the next COMMIT, one disk sync,
    makes them all durable. Each runs inside its own SAVEPOINT, so one that fails rolls back
    alone, and none is answered before the COMMIT that holds it: durability and atomicity are
    those of a transaction each, at the cost of one sync per group instead of one per write.
    Reads run on the same thread, between groups, so each sees one consistent state.

    The rows of each concept are a mixin over this class (users.py, drives.py, ...), which
    SqliteStore combines; they touch `db` only in functions _run or _write runs on the thread."""

    def __init__(self, path: Path, *, reserve: int = 0, inline_rows: int = 200, cached_rows: int = 10_000) -> None:
        self.path = path
        # Reads of at most this many rows (one drive, a page) run on the event loop through a
        # read-only connection of its own (see _read_now); longer ones go to the thread.
        self.inline_rows = inline_rows
        self._reader: sqlite3.Connection | None = None
        # Rows read on the loop and kept until anything commits (see _read_cached): at most
        # `cached_rows` of them, tagged with the database's data_version they were read at.
        self.cached_rows = cached_rows
        self._cache: dict[Hashable, Any] = {}
        self._cache_version = -1
        self._version_seen: int | None = None  # data_version as asked in this turn of the loop
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
        # Told how long each read and write took, waiting for the thread included (store.base.Timed).
        self.timer: StoreTimer | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.timer is None:
            return await self._in_thread(fn, *args)
        began = time.perf_counter()
        try:
            return await self._in_thread(fn, *args)
        finally:
            self.timer("read", time.perf_counter() - began)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _read(self, fn: Callable[[sqlite3.Connection], T], rows: int | None = 1, *, statements: int = 1) -> T:
        """A read, on the loop or the thread (_read_once), timed when a timer is set."""
        if self.timer is None:
            return await self._read_once(fn, rows, statements)
        began = time.perf_counter()
        try:
            return await self._read_once(fn, rows, statements)
        finally:
            self.timer("read", time.perf_counter() - began)

    async def _read_once(self, fn: Callable[[sqlite3.Connection], T], rows: int | None, statements: int) -> T:
        """A read: on the event loop when it touches at most `inline_rows` rows (`rows` None:
        unbounded), else on the store's thread.

        Why on the loop: a read on the thread queues behind the group commit in progress, whose
        disk sync takes milliseconds, and a thread hop costs more than an indexed lookup of a few
        rows whose pages are in memory (tens of microseconds). In WAL mode a reader never waits
        for the writer: it sees the last commit, which every answered write already is. A read
        that meets a lock (busy_timeout 0: it never sleeps here) or anything unusual goes to the
        thread instead. A read of more than one statement runs in a transaction of its own, so
        that they all see one state (one statement always does)."""
        reader = self._reader
        if reader is not None and rows is not None and rows <= self.inline_rows:
            try:
                if statements == 1:
                    return fn(reader)
                reader.execute("BEGIN")
                try:
                    return fn(reader)
                finally:
                    reader.execute("COMMIT")
            except sqlite3.OperationalError:
                if reader.in_transaction:
                    reader.execute("ROLLBACK")
        return await self._in_thread(fn, self.db)

    async def _read_cached(self, key: Hashable, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A one-row read answered from memory when nothing has committed since it was last made.

        `PRAGMA data_version` on the loop's read-only connection changes whenever any other
        connection commits: this process's writer thread, a command (`elastic-api image ...`) or
        anything else writing the file. It is asked once per turn of the event loop (_version):
        every request whose bytes came in before the turn began sees every commit that ended
        before it did. Every commit forgets every row, so a cached answer is never older than an
        uncached read made at the same moment would be. A value is kept only if no commit was
        seen while it was being read (a read sent to the thread yields to other requests).
        The cache is for SQLite alone: one file that every writer commits to. Values must be
        immutable: they are shared by every caller."""
        if self._reader is None or self.cached_rows <= 0:
            return await self._read(fn)
        version = self._version()
        if version is None:
            return await self._read(fn)
        cache = self._cache
        if version != self._cache_version:
            cache.clear()
            self._cache_version = version
        elif key in cache:
            return cast(T, cache[key])
        found = await self._read(fn)
        if self._cache_version == version and self._version() == version:
            if len(cache) >= self.cached_rows:
                del cache[next(iter(cache))]  # the oldest
            cache[key] = found
        return found

    def _version(self) -> int | None:
        """The database's data_version, asked at most once per turn of the event loop (a pragma
        releases the GIL and costs a busy server more than the rest of a cached read); None when
        the reader cannot tell. A write of this process ends in a later turn (it waits for the
        store's thread), so it is never hidden behind a version asked before it committed."""
        if self._version_seen is None:
            try:
                self._version_seen = self._reader.execute("PRAGMA data_version").fetchone()[0]  # type: ignore[union-attr]
            except sqlite3.OperationalError:
                return None
            asyncio.get_running_loop().call_soon(self._forget_version)
        return self._version_seen

    def _forget_version(self) -> None:
        self._version_seen = None

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, freeing: bool = False) -> T:
        """Run fn in a write transaction of its own, committed with whatever others are waiting.
        A full disk is FullError; a `freeing` write (a destroy) that finds it full gives up the
        reserve and tries once more."""
        if self.timer is None:
            return await self._write_once(fn, freeing=freeing)
        began = time.perf_counter()
        try:
            return await self._write_once(fn, freeing=freeing)
        finally:
            self.timer("write", time.perf_counter() - began)

    async def _write_once(self, fn: Callable[[sqlite3.Connection], T], *, freeing: bool) -> T:
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
            log.warning(
                "no room for the database's reserve file %s (%s): a destroy on a full disk "
                "may fail until space is freed",
                self.reserve_path,
                e.strerror,
            )
            return
        self._reserve_held = True

    def _release_reserve(self) -> bool:
        """Give up the reserve; False when there was none to give."""
        if not self._reserve_held:
            return False
        self.reserve_path.unlink(missing_ok=True)
        self._reserve_held = False
        self._reserve_retry = float("inf")  # not before the destroy that needs the room has committed
        log.warning(
            "the metadata disk is full: released the reserve file %s so a destroy can "
            "commit; it comes back once there is room",
            self.reserve_path,
        )
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
                if callable(script):
                    script(self.db)
                else:
                    for statement in _statements(script):
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    async def open(self) -> None:
        await self._run(self._open)
        if self.inline_rows > 0:
            # Opened on the loop's thread, used only there (a file already made and migrated).
            reader = sqlite3.connect(
                f"file:{urllib.parse.quote(str(self.path))}?mode=ro", uri=True, isolation_level=None
            )
            reader.execute("PRAGMA busy_timeout=0")
            reader.execute("PRAGMA query_only=1")
            self._reader = reader

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    async def integrity_check(self) -> str:
        return await self._run(lambda: self.db.execute("PRAGMA integrity_check").fetchone()[0])
