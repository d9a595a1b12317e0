"""The SQLite store: durability settings, migrations, owner-scoped queries, pages."""
from __future__ import annotations

import sqlite3

import pytest

from elastic_api.model.drive import Drive
from elastic_api.model.ids import ALL_USERS, new_id
from elastic_api.store.migrations import MIGRATIONS
from elastic_api.store.sqlite import LIST_DRIVE_IDS, LIST_DRIVES, SqliteStore


async def users(store, n=2):
    ids = [new_id() for _ in range(n)]
    for i, user in enumerate(ids):
        await store.create_user(user, f"u{i}", b"h" * 32, i)
    return ids


def drive(owner, created, **kw):
    return Drive(drive=new_id(), owner=owner, name="d", size=1024, created=created, **kw)


async def test_pragmas_and_schema_version(store):
    db = store.db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert await store.integrity_check() == "ok"


async def test_reopen_keeps_data_and_does_not_migrate_twice(tmp_path):
    path = tmp_path / "elastic.db"
    first = SqliteStore(path)
    await first.open()
    (alice,) = await users(first, 1)
    await first.insert_drive(drive(alice, 1))
    await first.close()
    second = SqliteStore(path)
    await second.open()
    assert len(await second.list_drives(alice, None, None)) == 1
    await second.close()


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "elastic.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore(path).open()


async def test_a_list_reads_only_the_users_drives(store):
    """Through the owner and reader indexes: never a scan of every drive in the system."""
    alice, bob = await users(store)
    for created in range(50):
        await store.insert_drive(drive(bob, created))
    await store.insert_drive(drive(bob, 99, readers=(alice,)))
    for select in (LIST_DRIVES, LIST_DRIVE_IDS):
        plan = store.db.execute(f"EXPLAIN QUERY PLAN {select} ORDER BY d.created, d.id LIMIT -1",
                                {"user": alice, "all": ALL_USERS}).fetchall()
        steps = [row[-1] for row in plan]
        assert not [step for step in steps if step.startswith("SCAN") and "drives" in step], steps
    listed = await store.list_drives(alice, None, None)
    assert [d.name for d in listed] == ["d"]
    assert await store.list_drive_ids(alice, None, None) == [d.drive for d in listed]


async def test_delete_cascades_readers(store):
    alice, bob = await users(store)
    shared = drive(alice, 1, readers=(bob,))
    await store.insert_drive(shared)
    assert await store.delete_drive(alice, shared.drive)
    assert store.db.execute("SELECT count(*) FROM drive_readers").fetchone()[0] == 0


async def test_foreign_keys_refuse_a_drive_without_user(store):
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_drive(drive(new_id(), 1))
