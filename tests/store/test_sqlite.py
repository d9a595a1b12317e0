"""The SQLite store: durability settings, migrations, owner-scoped queries, pages."""
from __future__ import annotations

import sqlite3

import pytest

from elastic_api.errors import UsageError
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


async def test_every_query_is_scoped_to_the_user(store):
    alice, bob = await users(store)
    mine = drive(alice, 1, tags=("t",), user_keys={"user:x": "y"})
    await store.insert_drive(mine)
    assert (await store.get_drive(alice, mine.drive)) == mine
    assert await store.get_drive(bob, mine.drive) is None
    assert await store.list_drives(bob, None, None) == []
    assert not await store.update_drive(bob, mine)
    assert not await store.delete_drive(bob, mine.drive)
    await store.count_drive_io(bob, mine.drive, read_bytes=10, read_requests=1)
    assert (await store.get_drive(alice, mine.drive)).read_bytes == 0
    await store.count_drive_io(alice, mine.drive, write_bytes=10, write_requests=1)
    assert (await store.get_drive(alice, mine.drive)).write_bytes == 10


async def test_readers_make_a_drive_visible_not_writable(store):
    alice, bob = await users(store)
    shared = drive(alice, 1, readers=(bob,))
    public = drive(alice, 2, readers=(ALL_USERS,))
    await store.insert_drive(shared)
    await store.insert_drive(public)
    stranger = new_id()
    assert [d.drive for d in await store.list_drives(bob, None, None)] == [shared.drive, public.drive]
    assert [d.drive for d in await store.list_drives(stranger, None, None)] == [public.drive]
    assert not await store.update_drive(bob, shared)
    assert not await store.delete_drive(bob, shared.drive)


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


async def test_pages_by_creation_then_id(store):
    (alice,) = await users(store, 1)
    drives = [drive(alice, created) for created in (5, 1, 5, 3)]
    for d in drives:
        await store.insert_drive(d)
    order = sorted(drives, key=lambda d: (d.created, d.drive))
    assert await store.list_drives(alice, None, None) == order
    assert await store.list_drives(alice, 2, order[1].drive) == order[2:4]
    assert await store.list_drive_ids(alice, None, None) == [d.drive for d in order]
    assert await store.list_drive_ids(alice, 2, order[1].drive) == [d.drive for d in order[2:4]]
    for listing in (store.list_drives, store.list_drive_ids):
        with pytest.raises(UsageError):
            await listing(alice, 2, new_id())


async def test_delete_cascades_readers(store):
    alice, bob = await users(store)
    shared = drive(alice, 1, readers=(bob,))
    await store.insert_drive(shared)
    assert await store.delete_drive(alice, shared.drive)
    assert store.db.execute("SELECT count(*) FROM drive_readers").fetchone()[0] == 0


async def test_foreign_keys_refuse_a_drive_without_user(store):
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_drive(drive(new_id(), 1))


async def test_wrapped_keys_are_kept_and_one_is_found_for_the_start_up_check(store):
    alice, _ = await users(store)
    assert await store.some_wrapped_key() is None
    plain = drive(alice, 1)
    await store.insert_drive(plain)
    assert await store.some_wrapped_key() is None and (await store.get_drive(alice, plain.drive)).wrapped_key is None
    secret = drive(alice, 2, encryption="aes-xts-plain", wrapped_key=b"\x01wrapped")
    await store.insert_drive(secret)
    found = await store.get_drive(alice, secret.drive)
    assert found.wrapped_key == b"\x01wrapped" and found.encrypted
    assert await store.some_wrapped_key() == (secret.drive, b"\x01wrapped")
    await store.update_drive(alice, found)  # set never touches the key
    assert (await store.get_drive(alice, secret.drive)).wrapped_key == b"\x01wrapped"
