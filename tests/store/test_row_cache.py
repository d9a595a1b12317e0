"""SQLite's drive-row cache: an info answered from memory between commits, never a stale one."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import pytest

from elastic_api.model.drive import Drive
from elastic_api.model.ids import new_id
from elastic_api.store.sqlite import SqliteStore


@pytest.fixture
async def make(tmp_path):
    opened = []

    async def make(**kw) -> SqliteStore:
        store = SqliteStore(tmp_path / "db" / "elastic.db", **kw)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def alice_and_bob(store) -> tuple[str, str]:
    ids = new_id(), new_id()
    for i, user in enumerate(ids):
        await store.create_user(user, f"u{i}", b"h" * 32, i)
    return ids


def queries(store) -> list[str]:
    """The statements the loop's read-only connection runs from now on."""
    seen: list[str] = []
    store._reader.set_trace_callback(seen.append)
    return seen


async def test_a_second_info_without_a_commit_runs_no_query(make):
    store = await make()
    alice, _ = await alice_and_bob(store)
    drive = Drive(drive=new_id(), owner=alice, name="first", size=1024, created=1)
    await store.insert_drive(drive)
    seen = queries(store)
    first = await store.get_drive(alice, drive.drive)
    assert any("FROM drives" in q for q in seen)
    seen.clear()
    assert await store.get_drive(alice, drive.drive) is first
    assert seen == []  # the version was asked in this turn of the loop already
    await asyncio.sleep(0)  # a later turn: asked again, and nothing more
    assert await store.get_drive(alice, drive.drive) is first
    assert seen == ["PRAGMA data_version"]


async def test_a_commit_of_this_store_is_seen_at_once(make):
    store = await make()
    alice, _ = await alice_and_bob(store)
    drive = Drive(drive=new_id(), owner=alice, name="first", size=1024, created=1)
    await store.insert_drive(drive)
    assert (await store.get_drive(alice, drive.drive)).name == "first"
    assert await store.update_drive(alice, dataclasses.replace(drive, name="second"))
    assert (await store.get_drive(alice, drive.drive)).name == "second"
    assert await store.delete_drive(alice, drive.drive)
    assert await store.get_drive(alice, drive.drive) is None


async def test_a_commit_of_another_connection_is_seen_at_once(make):
    """A command (`elastic-api ...`) writes the file from another process: no message reaches the
    server, the database's data_version tells it."""
    store = await make()
    alice, _ = await alice_and_bob(store)
    drive = Drive(drive=new_id(), owner=alice, name="first", size=1024, created=1)
    await store.insert_drive(drive)
    assert (await store.get_drive(alice, drive.drive)).name == "first"
    other = sqlite3.connect(store.path)
    with other:
        other.execute("UPDATE drives SET name = 'renamed' WHERE id = ?", (drive.drive,))
    other.close()
    # A request that came in before the commit may be answered as before it; the first turn of
    # the loop after it (where any request sent after the command ended is read) sees it.
    await asyncio.sleep(0)
    assert (await store.get_drive(alice, drive.drive)).name == "renamed"


async def test_another_users_answer_is_not_shared(make):
    store = await make()
    alice, bob = await alice_and_bob(store)
    drive = Drive(drive=new_id(), owner=alice, name="mine", size=1024, created=1)
    await store.insert_drive(drive)
    assert await store.get_drive(alice, drive.drive) is not None
    assert await store.get_drive(bob, drive.drive) is None
    assert await store.get_drive(bob, drive.drive) is None  # from memory now, and still None


async def test_a_row_read_while_something_committed_is_not_kept(make):
    """A read that yields (sent to the store's thread) may return a row older than a commit the
    loop saw meanwhile: it answers that caller but is not kept for the next."""
    store = await make()
    alice, _ = await alice_and_bob(store)
    drive = Drive(drive=new_id(), owner=alice, name="first", size=1024, created=1)
    await store.insert_drive(drive)
    plain_read = store._read
    committed = False

    async def read_then_commit(fn, *args, **kw):
        nonlocal committed
        found = await plain_read(fn, *args, **kw)
        if not committed:
            committed = True
            await store.update_drive(alice, dataclasses.replace(drive, name="second"))
        return found

    store._read = read_then_commit
    assert (await store.get_drive(alice, drive.drive)).name == "first"
    assert ("drive", alice, drive.drive) not in store._cache
    store._read = plain_read
    assert (await store.get_drive(alice, drive.drive)).name == "second"


async def test_the_cache_holds_at_most_its_rows_and_can_be_off(make):
    store = await make(cached_rows=2)
    alice, _ = await alice_and_bob(store)
    drives = [Drive(drive=new_id(), owner=alice, name=f"d{i}", size=1024, created=i) for i in range(3)]
    for drive in drives:
        await store.insert_drive(drive)
    for drive in drives:
        assert (await store.get_drive(alice, drive.drive)).name == drive.name
    assert len(store._cache) == 2
    assert (await store.get_drive(alice, drives[0].drive)).name == "d0"  # forgotten, read again

    off = await make(cached_rows=0)
    seen = queries(off)
    for _ in range(2):
        assert (await off.get_drive(alice, drives[0].drive)).name == "d0"
    assert sum("FROM drives" in q for q in seen) == 2
    assert not off._cache
