"""The PostgreSQL engine under the store: a pool of connections, one transaction per call,
locks where several nodes may race, the disk-full error, and the schema's migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from elastic_api.errors import FullError, UsageError
from elastic_api.store.postgres.migrations import MIGRATIONS

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
log = logging.getLogger(__name__)

# A serializable or deadlocked transaction is tried again this many times before its error is
# raised: each retry is a conflict another transaction won, so a handful means heavy contention.
_RETRIES = 8
# The advisory lock that makes one node at a time migrate the schema (an arbitrary constant).
_MIGRATION_LOCK = 0x656C6173  # "elas"


def full() -> FullError:
    return FullError("the metadata disk is full: destroy drives or servers to free space")


def _is_nul(error: psycopg.DataError) -> bool:
    """Text holding U+0000, which PostgreSQL cannot store (SQLite can): refused by psycopg before
    it is sent, or by the server inside JSON (SQLSTATE 22P05)."""
    return isinstance(error, pg_errors.UntranslatableCharacter) or (
        error.sqlstate is None and "NUL (0x00)" in str(error)
    )


def _nul() -> UsageError:
    return UsageError("text must not contain NUL characters")


def after_marker(marker: str | None, found: tuple[int, str] | None, params: dict[str, Any], key: str) -> str:
    """The clause that starts a page after its marker (creation time, then ID), or none; a marker
    the user cannot see is unknown, whether it exists or not."""
    if marker is None:
        return ""
    if found is None:
        raise UsageError(f"unknown marker: {marker}")
    params.update(m_created=found[0], m_id=found[1])
    return f"{key} > (%(m_created)s, %(m_id)s)"


async def lock(conn: Conn, *key: str) -> None:
    """Hold an advisory lock on `key` until the transaction ends: what stands in for SQLite's one
    writer where a check and a change must not interleave with another node's (a count under a
    limit, the lowest free address, a resource's job queue). Keys are hashed into PostgreSQL's
    64-bit lock space; a collision only makes two unrelated callers wait for each other."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (":".join(key),))


class PostgresEngine:
    """Every call borrows a connection from the pool and runs one transaction on it. Writes run at
    READ COMMITTED and take the locks their checks need (row locks, advisory locks), so they wait
    for each other only where they touch the same thing; reads that run several statements do so
    in one REPEATABLE READ snapshot. A deadlock or serialization failure is retried whole."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "store is not open"
        return self._pool

    @asynccontextmanager
    async def _transaction(self, *, read_only: bool) -> AsyncIterator[Conn]:
        async with self.pool.connection() as conn, conn.transaction():
            if read_only:
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], read_only: bool) -> T:
        for attempt in range(_RETRIES + 1):
            try:
                async with self._transaction(read_only=read_only) as conn:
                    return await fn(conn)
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                if attempt == _RETRIES:
                    raise
            except pg_errors.DiskFull:
                raise full() from None
            except psycopg.DataError as e:
                if _is_nul(e):  # input the dialects let through: the caller's mistake, not ours
                    raise _nul() from None
                raise
        raise AssertionError("unreachable")

    async def _write(self, fn: Callable[[Conn], Awaitable[T]], *, freeing: bool = False) -> T:
        """Run fn in a write transaction of its own. A full disk is FullError. (`freeing`: a
        destroy; PostgreSQL keeps no reserve of ours, so it is the same.)"""
        return await self._call(fn, read_only=False)

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run fn's statements in one consistent snapshot."""
        return await self._call(fn, read_only=True)

    async def _execute(self, sql: str, params: Any = ()) -> int:
        """One statement as a write transaction; the rows it changed."""

        async def run(conn: Conn) -> int:
            return (await conn.execute(sql, params)).rowcount

        return await self._write(run)

    async def _single(self, fn: Callable[[Conn], Awaitable[T | None]]) -> T | None:
        """fn's one statement on a pooled connection, outside a transaction (one statement is
        one snapshot: no round trips for BEGIN and COMMIT); None when it looked up text with NUL."""
        try:
            async with self.pool.connection() as conn:
                return await fn(conn)
        except pg_errors.DiskFull:
            raise full() from None
        except psycopg.DataError as e:
            if _is_nul(e):
                return None
            raise

    async def _one(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        """The first row of one read statement (one statement is one snapshot: no transaction
        settings needed)."""
        try:
            async with self.pool.connection() as conn:
                return await (await conn.execute(sql, params)).fetchone()
        except pg_errors.DiskFull:  # a sort or hash spilling to a temporary file
            raise full() from None
        except psycopg.DataError as e:
            if _is_nul(e):  # a lookup by a text holding NUL: there is no such row
                return None
            raise

    async def _all(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        try:
            async with self.pool.connection() as conn:
                return await (await conn.execute(sql, params)).fetchall()
        except pg_errors.DiskFull:
            raise full() from None
        except psycopg.DataError as e:
            if _is_nul(e):
                return []
            raise

    # -- lifecycle --------------------------------------------------------------------------
    async def open(self) -> None:
        # autocommit: each call's transaction is its own BEGIN/COMMIT (conn.transaction()), and a
        # connection goes back to the pool with none open.
        pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False, kwargs={"autocommit": True}, name="elastic-api"
        )
        await pool.open(wait=True, timeout=30)
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            await pool.close()
            self._pool = None
            raise

    async def _migrate(self) -> None:
        async with self.pool.connection() as conn:
            # One node at a time: a second node starting during a rolling upgrade waits, then
            # finds the schema current.
            await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                row = await (await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")).fetchone()
                version = int(row[0]) if row else 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(f"database schema {version} is newer than this program ({len(MIGRATIONS)})")
                for number, script in enumerate(MIGRATIONS[version:], version + 1):
                    async with conn.transaction():
                        await conn.execute(script)
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
