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
    for select in (*LIST_DRIVES, *LIST_DRIVE_IDS):
        plan = store.db.execute(
            f"EXPLAIN QUERY PLAN {select}", {"user": alice, "all": ALL_USERS, "limit": -1}
        ).fetchall()
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


def _steps(store, sql: str, params: dict) -> int:
    """SQLite virtual machine steps a query takes (what it costs, whatever the machine's speed)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store.db.set_progress_handler(tick, 1)
    try:
        store.db.execute(sql, params).fetchall()
    finally:
        store.db.set_progress_handler(None, 1)
    return count[0]


async def test_a_page_costs_what_it_holds_not_what_the_user_has(store):
    """GET /drives/list?limit=100 after a marker: the owner index (owner, created, id) serves the
    ORDER BY ... LIMIT from the marker on, so a page of 100 costs the same with 1,000 drives as
    with 10,000, and a few times one drive's lookup, not a scan of the user's drives."""
    from elastic_api.store.sqlite.drives import _PAGES, _DRIVE_COLUMNS

    alice, bob = await users(store)
    rows = [(new_id(), alice if i % 10 else bob, i) for i in range(11_000)]
    store.db.execute("BEGIN")
    store.db.executemany(
        "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, keys,"
        " created) VALUES (?, ?, 'd', 1, 'raw', 'exclusive', 'none', 'disk', '{}', ?)",
        rows,
    )
    store.db.execute("COMMIT")
    mine = sorted((created, drive) for drive, owner, created in rows if owner == alice)  # 9,900 drives
    middle, late = mine[4000], mine[9000]
    for columns in (_DRIVE_COLUMNS, "d.id"):
        costs = []
        own, shared = _PAGES[columns, True]
        for created, drive in (middle, late):
            params = {"user": alice, "all": ALL_USERS, "limit": 100, "created": created, "id": drive}
            plan = " | ".join(row[-1] for row in store.db.execute(f"EXPLAIN QUERY PLAN {own}", params))
            # The range after the marker is an index search, already in order: no sort at all.
            assert "drives_by_owner (owner=? AND " in plan and "TEMP B-TREE" not in plan, plan
            costs.append(_steps(store, own, params) + _steps(store, shared, params))
        whole = _steps(store, _PAGES[columns, False][0], {"user": alice, "all": ALL_USERS, "limit": -1})
        assert max(costs) < 1.2 * min(costs), costs  # the same after 4,000 drives as after 9,000
        assert max(costs) * 20 < whole, (costs, whole)  # a page of 100 is ~1/100 of the 9,900-drive list
    page = await store.list_drive_ids(alice, 100, middle[1])
    assert page == [drive for _, drive in mine[4001:4101]]
    info = await store.list_drives(alice, 100, late[1])
    assert [d.drive for d in info] == [drive for _, drive in mine[9001:9101]]
