"""What is particular to the PostgreSQL engine: its migrations, the disk-full error, retries."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg import errors as pg_errors

from elastic_api.errors import FullError
from elastic_api.store.postgres import PostgresStore
from elastic_api.store.postgres.migrations import MIGRATIONS
from tests.postgres import fresh_database


async def versions(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as db:
        return [
            row[0]
            for row in await (await db.execute("SELECT version FROM schema_migrations ORDER BY version")).fetchall()
        ]


async def test_nodes_starting_together_migrate_once_and_a_newer_schema_is_refused():
    async with fresh_database() as url:
        stores = [PostgresStore(url) for _ in range(3)]
        await asyncio.gather(*(store.open() for store in stores))
        assert await versions(url) == list(range(1, len(MIGRATIONS) + 1))
        for store in stores:
            await store.close()
        store = PostgresStore(url)
        await store.open()  # again: nothing to do
        await store.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
        with pytest.raises(RuntimeError, match="newer than this program"):
            await PostgresStore(url).open()


async def test_a_full_disk_is_full_error_and_conflicts_are_retried_whole():
    async with fresh_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:

            async def full(conn: object) -> None:
                raise pg_errors.DiskFull("could not extend file: No space left on device")

            with pytest.raises(FullError):
                await store._write(full)
            tries = []

            async def conflicted(conn: psycopg.AsyncConnection) -> int:
                tries.append(1)
                await conn.execute("SELECT 1")
                if len(tries) < 3:
                    raise pg_errors.SerializationFailure("could not serialize access")
                return len(tries)

            assert await store._write(conflicted) == 3
        finally:
            await store.close()


async def test_text_holding_nul_is_a_usage_error_and_matches_nothing():
    """PostgreSQL cannot store U+0000 in text (SQLite can): a write of it is the caller's
    mistake (400), a lookup by it finds nothing."""
    from elastic_api.errors import UsageError
    from elastic_api.model.drive import Drive
    from elastic_api.model.ids import new_id

    async with fresh_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            user = new_id()
            await store.create_user(user, "u", b"h", 1)
            for drive in (
                Drive(drive=new_id(), owner=user, name="a\x00b", size=1, created=1),
                Drive(drive=new_id(), owner=user, name="a", size=1, created=1, tags=("t\x00",)),
            ):
                with pytest.raises(UsageError, match="NUL"):
                    await store.insert_drive(drive)
            assert await store.list_drives(user, None, None) == []
            assert await store.get_token(b"\x00") is None  # bytes are fine
            assert await store.server_owner("a\x00") is None
            assert await store.list_ssh_keys("a\x00") == []
        finally:
            await store.close()
