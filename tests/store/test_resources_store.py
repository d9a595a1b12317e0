"""The store's resources and leases: the database itself refuses two holders of one address."""
from __future__ import annotations

import sqlite3

import pytest

from elastic_api.errors import BusyError, FullError, MissingError, UsageError
from elastic_api.model.ids import new_id
from elastic_api.model.resource import Lease, Resource
from elastic_api.model.server import parse_config
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


async def test_pool_addresses_in_order_until_full(store):
    alice, bob = await users(store)
    got = [await store.insert_ip_from_pool(ip(owner, n), FIRST, LAST) for n, owner in enumerate((alice, bob, alice))]
    assert [r.resource for r in got if r] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert await store.insert_ip_from_pool(ip(bob), FIRST, LAST) is None
    assert [r.resource for r in await store.list_resources(alice, "ip", None, None)] == ["10.0.0.2", "10.0.0.4"]
    assert await store.list_resources(alice, "vlan", None, None) == []
    assert await store.get_resource(bob, "ip", "10.0.0.2") is None
    assert not await store.delete_resource(bob, "ip", "10.0.0.2")
    assert not await store.update_resource(bob, got[0])  # type: ignore[arg-type]
    assert await store.delete_resource(alice, "ip", "10.0.0.2")
    assert (await store.insert_ip_from_pool(ip(bob), FIRST, LAST)).resource == "10.0.0.2"  # type: ignore[union-attr]


async def test_pages_span_both_types(store):
    (alice,) = await users(store, 1)
    vlan = Resource(new_id(), "vlan", alice, created=2)
    await store.insert_resource(vlan)
    first = await store.insert_ip_from_pool(ip(alice, 1), FIRST, LAST)
    third = await store.insert_ip_from_pool(ip(alice, 3), FIRST, LAST)
    assert [r.resource for r in await store.list_resources(alice, None, None, None)] == [
        first.resource, vlan.resource, third.resource]  # type: ignore[union-attr]
    assert await store.list_resources(alice, None, 1, vlan.resource) == [third]
    with pytest.raises(UsageError):
        await store.list_resources(alice, "ip", 1, vlan.resource)  # not an IP: an unknown marker


async def test_leases_all_or_nothing(store):
    alice, bob = await users(store)
    mine = await store.insert_ip_from_pool(ip(alice), FIRST, LAST)
    assert mine is not None
    sid = await server(store, alice)
    leases = await store.lease_ips(alice, sid, [(0, "02:00:00:00:00:01", mine.resource)], [(1, "02:00:00:00:00:02")],
                                   FIRST, LAST)
    assert leases == [Lease(sid, 0, "02:00:00:00:00:01", "10.0.0.2", auto=False),
                      Lease(sid, 1, "02:00:00:00:00:02", "10.0.0.3", auto=True)]
    assert await store.server_leases(alice, sid) == leases
    assert await store.server_leases(bob, sid) == []
    assert await store.active_leases() == [("h", leases[0]), ("h", leases[1])]

    other = await server(store, alice)
    with pytest.raises(BusyError, match=sid):
        await store.lease_ips(alice, other, [(0, "02:00:00:00:00:03", mine.resource)], [], FIRST, LAST)
    with pytest.raises(FullError):  # 10.0.0.4 is free, a second auto NIC finds nothing: neither is kept
        await store.lease_ips(alice, other, [], [(0, "02:00:00:00:00:03"), (1, "02:00:00:00:00:04")], FIRST, LAST)
    assert await store.server_leases(alice, other) == []
    theirs = await server(store, bob)
    with pytest.raises(MissingError):
        await store.lease_ips(bob, theirs, [(0, "02:00:00:00:00:05", mine.resource)], [], FIRST, LAST)

    with pytest.raises(BusyError, match=sid):
        await store.delete_resource(alice, "ip", mine.resource)
    await store.release_leases(bob, sid)  # not bob's server: nothing happens
    assert len(await store.server_leases(alice, sid)) == 2
    assert await store.deactivate_server(alice, sid)
    assert await store.server_leases(alice, sid) == []
    assert await store.delete_resource(alice, "ip", mine.resource)


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
        db.execute("INSERT INTO resources (id, type, owner, name, created) VALUES ('10.0.0.3', 'ip', ?, '', 1)",
                   (alice,))
    db.execute("INSERT INTO ip_leases (ip, server, nic, mac, resource) VALUES (?, ?, 1, 'm', ?)",
               (mine.resource, two, mine.resource))
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # a held IP resource cannot go
        db.execute("DELETE FROM resources WHERE id = ?", (mine.resource,))


async def test_references_from_stopped_servers_keep_resources(store):
    alice, bob = await users(store)
    vlan = Resource(new_id(), "vlan", alice, created=1)
    await store.insert_resource(vlan)
    mine = await store.insert_ip_from_pool(ip(alice), FIRST, LAST)
    assert mine is not None
    sid = new_id()
    config = parse_config({"name": "s", "cpu": "1000", "mem": "64", "nic:0:model": "virtio",
                           "nic:0:vlan": vlan.resource, "vnc": mine.resource}, sid)
    await store.insert_server(ServerRecord(sid, alice, config, created=1))
    for type_, resource in (("vlan", vlan.resource), ("ip", mine.resource)):
        with pytest.raises(BusyError, match=sid):
            await store.delete_resource(alice, type_, resource)
    assert await store.all_vlan_ids() == {vlan.resource}
    assert await store.delete_server(alice, sid)
    assert await store.delete_resource(alice, "vlan", vlan.resource)
    assert await store.delete_resource(alice, "ip", mine.resource)
    assert await store.all_vlan_ids() == set()


async def test_stale_leases_are_dropped(store):
    (alice,) = await users(store, 1)
    sid = await server(store, alice)
    await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)
    assert await store.drop_stale_leases() == 0
    store.db.execute("UPDATE servers SET status = 'stopped' WHERE id = ?", (sid,))  # as a crash might leave it
    assert await store.drop_stale_leases() == 1
    assert await store.server_leases(alice, sid) == []
