"""Group commit: writes that wait together share one COMMIT, yet each succeeds or fails alone."""

from __future__ import annotations

import asyncio
import sqlite3


from elastic_api.errors import BusyError
from tests.store.test_sqlite import drive, users


async def test_a_failing_write_rolls_back_alone(store, tmp_path):
    (alice,) = await users(store, 1)
    commits = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    good = [drive(alice, i) for i in range(20)]
    duplicate = good[3]

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("UPDATE drives SET name = 'changed' WHERE owner = ?", (alice,))
        raise BusyError("changed my mind")

    results = await asyncio.gather(
        *(store.insert_drive(d) for d in good[:10]),
        store.insert_drive(duplicate),  # the same UUID again: an integrity error for this one only
        store._write(half_then_fail),
        *(store.insert_drive(d) for d in good[10:]),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 2 and isinstance(errors[0], sqlite3.IntegrityError) and isinstance(errors[1], BusyError)
    listed = await store.list_drives(alice, None, None)
    assert sorted(d.drive for d in listed) == sorted(d.drive for d in good)
    assert {d.name for d in listed} == {"d"}  # the failed write's update is gone
    assert len(commits) < 22  # grouped: fewer syncs than writes

    # Durable: another connection (as after a crash and restart) sees exactly the answered writes.
    other = sqlite3.connect(store.path)
    assert other.execute("SELECT count(*) FROM drives WHERE owner = ?", (alice,)).fetchone()[0] == 20
    other.close()
