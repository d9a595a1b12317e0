"""The VLAN-number migration on a database the previous version wrote: existing VLANs are
numbered per owner in the order they were made; IPs get none."""

from __future__ import annotations

import sqlite3

from elastic_api.store.migrations import MIGRATIONS
from elastic_api.store.sqlite import SqliteStore, _statements

# Found by what it makes, so migrations that land before it do not change this test.
VLAN_ID_MIGRATION = 1 + next(
    i for i, step in enumerate(MIGRATIONS) if isinstance(step, str) and "ADD COLUMN vlan_id" in step
)


async def test_vlans_of_an_older_database_are_numbered(tmp_path):
    path = tmp_path / "elastic.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[: VLAN_ID_MIGRATION - 1]:
        if isinstance(step, str):
            for statement in _statements(step):
                db.execute(statement)
        else:
            step(db)
    db.execute(f"PRAGMA user_version = {VLAN_ID_MIGRATION - 1}")
    db.executemany(
        "INSERT INTO users (id, name, secret_hash, created) VALUES (?, ?, ?, 0)", [("u1", "a", b"h"), ("u2", "b", b"h")]
    )
    db.executemany(
        "INSERT INTO resources (id, type, owner, name, created) VALUES (?, ?, ?, '', ?)",
        [("v-b", "vlan", "u1", 20), ("v-a", "vlan", "u1", 10), ("10.0.0.1", "ip", "u1", 5), ("v-c", "vlan", "u2", 30)],
    )
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        found = {r.resource: r.vlan_id for r in await store.list_resources("u1", None, None, None)}
        assert found == {"10.0.0.1": None, "v-a": 1, "v-b": 2}
        assert [r.vlan_id for r in await store.list_resources("u2", None, None, None)] == [1]
    finally:
        await store.close()


async def test_vlans_of_an_older_postgres_database_are_numbered():
    import psycopg

    from elastic_api.store.postgres import PostgresStore
    from elastic_api.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
    from tests.postgres import fresh_database

    before = next(i for i, step in enumerate(PG_MIGRATIONS) if "ADD COLUMN vlan_id" in step)
    async with fresh_database() as url:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            await db.execute(
                "CREATE TABLE schema_migrations"
                " (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number, step in enumerate(PG_MIGRATIONS[:before], 1):
                await db.execute(step)
                await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
            for user in ("u1", "u2"):
                await db.execute(
                    "INSERT INTO users (id, name, secret_hash, created) VALUES (%s, 'n', 'h'::bytea, 0)", (user,)
                )
            for row in (("v-b", "vlan", "u1", 20), ("v-a", "vlan", "u1", 10), ("10.0.0.1", "ip", "u1", 5)):
                await db.execute(
                    "INSERT INTO resources (id, type, owner, name, created) VALUES (%s, %s, %s, '', %s)", row
                )
            await db.execute(
                "INSERT INTO resources (id, type, owner, name, created) VALUES ('v-c', 'vlan', 'u2', '', 30)"
            )
        store = PostgresStore(url)
        await store.open()
        try:
            found = {r.resource: r.vlan_id for r in await store.list_resources("u1", None, None, None)}
            assert found == {"10.0.0.1": None, "v-a": 1, "v-b": 2}
            assert [r.vlan_id for r in await store.list_resources("u2", None, None, None)] == [1]
        finally:
            await store.close()
