"""The ECS migration on a database the previous version wrote: its standard images get catalogue
numbers in the order they were added, and nothing else changes."""

from __future__ import annotations

import sqlite3

from elastic_api.store.migrations import MIGRATIONS
from elastic_api.store.sqlite import SqliteStore, _statements

# Found by what it makes, so migrations that land before it do not change this test.
ECS_MIGRATION = 1 + next(
    i for i, step in enumerate(MIGRATIONS) if isinstance(step, str) and "CREATE TABLE api_tokens" in step
)


async def test_images_of_an_older_database_are_numbered(tmp_path):
    path = tmp_path / "elastic.db"
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[: ECS_MIGRATION - 1]:
        assert isinstance(script, str), "a Python step before the ECS rows: run it here too"
        for statement in _statements(script):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {ECS_MIGRATION - 1}")
    db.executemany(
        "INSERT INTO images (id, name, size, created) VALUES (?, ?, ?, ?)",
        [("b", "Second", 1, 20), ("a", "First", 1, 10), ("c", "Third", 1, 30)],
    )
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        numbered = await store.numbered_images()
        assert [(n.number, n.image.image) for n in numbered] == [(1, "a"), (2, "b"), (3, "c")]
        assert [i.image for i in await store.list_images(None, None)] == ["a", "b", "c"]
    finally:
        await store.close()
