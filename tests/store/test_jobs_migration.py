"""Migration 7: a database written before jobs existed loads, its queued image jobs become jobs in
their order, and each drive's imaging error stays visible until the drive is imaged again."""

from __future__ import annotations

import sqlite3

from elastic_api.model.ids import new_id
from elastic_api.model.job import IMAGE, QUEUED, ImageParams
from elastic_api.store.sqlite import SqliteStore, _statements
from elastic_api.store.migrations import MIGRATIONS

# Its place in the list, found by what it does: other migrations may land before it.
JOBS_MIGRATION = next(i for i, m in enumerate(MIGRATIONS) if isinstance(m, str) and "CREATE TABLE jobs" in m)


def old_database(path) -> tuple[str, str, str, str]:
    """A database as the migrations before jobs left it, with rows the code before jobs wrote."""
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:JOBS_MIGRATION]:
        if callable(migration):
            migration(db)
        else:
            for statement in _statements(migration):
                db.execute(statement)
    db.execute(f"PRAGMA user_version = {JOBS_MIGRATION}")
    user, queued, failed, source = new_id(), new_id(), new_id(), new_id()
    db.execute("INSERT INTO users VALUES (?, 'u', x'00', 1)", (user,))
    for drive, imaging, error in (
        (queued, "queued", "image from x failed: no room"),
        (failed, None, "image from y failed: broken"),
        (source, None, None),
    ):
        db.execute(
            "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, created,"
            " imaging, imaging_error) VALUES (?, ?, 'd', 1024, 'raw', 'exclusive', 'none', 'disk', 1, ?, ?)",
            (drive, user, imaging, error),
        )
    for conversion in ("gzip", ""):
        db.execute(
            "INSERT INTO image_jobs (drive, owner, source, conversion) VALUES (?, ?, ?, ?)",
            (queued, user, source, conversion),
        )
    db.close()
    return user, queued, failed, source


async def test_queued_image_jobs_and_errors_become_jobs(tmp_path):
    path = tmp_path / "elastic.db"
    user, queued, failed, source = old_database(path)
    store = SqliteStore(path)
    await store.open()
    try:
        jobs = await store.unfinished_jobs()
        assert [(j.kind, j.owner, j.resource, j.params, j.status) for j in jobs] == [
            (IMAGE, user, queued, ImageParams(source, "gzip"), QUEUED),
            (IMAGE, user, queued, ImageParams(source, ""), QUEUED),
        ]
        drive = await store.get_drive(user, queued)
        assert drive is not None
        # The error the old row showed beside its queue still shows, as it did before.
        assert drive.image_job == jobs[0] and drive.imaging_error == "image from x failed: no room"
        drive = await store.get_drive(user, failed)
        assert drive is not None
        assert drive.image_job is None and drive.imaging_error == "image from y failed: broken"
        drive = await store.get_drive(user, source)
        assert drive is not None and drive.imaging_error is None
        tables = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "image_jobs" not in tables
        assert store.db.execute(
            "SELECT count(*) FROM drives WHERE imaging IS NOT NULL OR imaging_error IS NOT NULL"
        ).fetchone() == (0,)
    finally:
        await store.close()
