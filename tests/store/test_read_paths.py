"""The store's read paths: lookups on the event loop, other reads on their own thread; neither
waits behind a commit, and each sees every write that has been answered."""
from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading

import pytest

from elastic_api.model.drive import Drive
from elastic_api.model.ids import new_id


async def a_user(store):
    user = new_id()
    await store.create_user(user, "u", b"h" * 32, 0)
    return user


async def test_reads_see_every_answered_write(store):
    user = await a_user(store)
    drive = Drive(drive=new_id(), owner=user, name="n0", size=1024, created=1)
    await store.insert_drive(drive)
    for i in range(1, 50):
        changed = dataclasses.replace(drive, name=f"n{i}")
        assert await store.update_drive(user, changed)
        assert (await store.get_drive(user, drive.drive)).name == f"n{i}"
        assert [d.name for d in await store.list_drives(user, None, None)] == [f"n{i}"]
    assert await store.delete_drive(user, drive.drive)
    assert await store.get_drive(user, drive.drive) is None
    assert await store.list_drives(user, None, None) == []
    assert await store.user_secret_hash(user) == b"h" * 32
    assert await store.user_secret_hash(new_id()) is None


async def test_reads_do_not_wait_for_the_writer(store):
    """While the write thread is stuck (as in a slow disk sync), lookups and lists still answer."""
    user = await a_user(store)
    drive = Drive(drive=new_id(), owner=user, name="d", size=1024, created=1)
    await store.insert_drive(drive)
    release = threading.Event()
    stuck = asyncio.get_running_loop().run_in_executor(store._thread, release.wait)
    try:
        async with asyncio.timeout(5):
            assert (await store.get_drive(user, drive.drive)).name == "d"
            assert await store.user_secret_hash(user) == b"h" * 32
            assert len(await store.list_drives(user, None, None)) == 1
            assert (await store.usage(user)).drives == 1
    finally:
        release.set()
        await stuck


async def test_the_read_connections_cannot_write(store):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store._lookup(lambda db: db.execute("DELETE FROM users"))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store._read(lambda db: db.execute("DELETE FROM users"))


async def test_a_busy_lookup_is_retried_on_the_read_thread(store):
    """SQLITE_BUSY on the event loop's connection (which never waits) sends the lookup to the
    read thread; other errors are raised as they are."""
    user = await a_user(store)
    seen = []

    def lookup(db):
        seen.append(db)
        if db is store._loop_db:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return db.execute("SELECT name FROM users WHERE id = ?", (user,)).fetchone()[0]

    assert await store._lookup(lookup) == "u"
    assert seen == [store._loop_db, store._read_db]
    with pytest.raises(sqlite3.OperationalError, match="no such table|nothing"):
        await store._lookup(lambda db: db.execute("SELECT * FROM nothing"))
