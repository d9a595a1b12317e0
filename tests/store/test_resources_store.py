"""The store's resources and leases: the database itself refuses two holders of one address."""

from __future__ import annotations

import sqlite3

import pytest

from elastic_api.model.ids import new_id
from elastic_api.model.resource import Resource
from elastic_api.api.elastichosts.codec.server import parse_config
from elastic_api.model.server_record import ServerRecord
from elastic_api.store.sqlite import SqliteStore, _statements
from tests.store.test_sqlite import users

FIRST, LAST = "10.0.0.2", "10.0.0.4"


def ip(owner: str, created: int = 1) -> Resource:
    return Resource("", "ip", owner, created=created)


async def server(store: SqliteStore, owner: str, **props: str) -> str:
    sid = new_id()
    config = parse_config({"name": "s", "cpu": "1000", "mem": "64", **props}, sid)
    await store.insert_server(ServerRecord(sid, owner, config, created=1))
    await store.activate_server(owner, sid, "h", 1, [])
    return sid


def test_migration_statements_keep_trigger_bodies_whole():
    script = "CREATE TABLE a (x);\nCREATE TRIGGER t BEFORE INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n"
    assert [s.split()[1] for s in _statements(script)] == ["TABLE", "TRIGGER"]
    with pytest.raises(RuntimeError, match="incomplete"):
        _statements("CREATE TRIGGER t BEFORE INSERT ON a BEGIN SELECT 1;")


async def test_the_schema_itself_refuses_two_holders(store):
    """Not only the Python above: the tables refuse what a racing second writer could attempt."""
    alice, _ = await users(store)
    mine = await store.insert_ip_from_pool(ip(alice), FIRST, LAST)
    assert mine is not None
    one, two = await server(store, alice), await server(store, alice)
    db = store.db
    db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES ('10.0.0.3', ?, 0, 'm')", (one,))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES ('10.0.0.3', ?, 0, 'm')", (two,))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES ('10.0.0.9', ?, 0, 'm')", (one,))
    with pytest.raises(sqlite3.IntegrityError, match="IP resource"):  # an auto lease on a user's IP
        db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES (?, ?, 1, 'm')", (mine.resource, two))
    with pytest.raises(sqlite3.IntegrityError, match="leased"):  # an IP resource on a leased address
        db.execute(
            "INSERT INTO resources (id, type, owner, name, created) VALUES ('10.0.0.3', 'ip', ?, '', 1)", (alice,)
        )
    db.execute(
        "INSERT INTO ip_leases (ip, server, nic, mac, resource) VALUES (?, ?, 1, 'm', ?)",
        (mine.resource, two, mine.resource),
    )
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # a held IP resource cannot go
        db.execute("DELETE FROM resources WHERE id = ?", (mine.resource,))


async def test_stale_leases_are_dropped(store):
    (alice,) = await users(store, 1)
    sid = await server(store, alice)
    await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)
    assert await store.drop_stale_leases() == 0
    store.db.execute("UPDATE servers SET status = 'stopped' WHERE id = ?", (sid,))  # as a crash might leave it
    assert await store.drop_stale_leases() == 1
    assert await store.server_leases(alice, sid) == []
