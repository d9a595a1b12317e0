"""Store contract: servers, their claims, resources and leases."""

from __future__ import annotations

import pytest

from elastic_api.errors import BusyError, FullError, MissingError, UsageError
from elastic_api.model.ids import new_id
from elastic_api.model.resource import Lease, Resource
from elastic_api.api.elastichosts.codec.server import parse_config
from elastic_api.model.device import Device
from elastic_api.model.server_record import ACTIVE, STOPPED, Claim, ServerRecord
from tests.contract.conftest import active_server, drive, ip, server_record, users

FIRST, LAST = "10.0.0.2", "10.0.0.4"

IDE_0_0 = Device("ide", 0, 0)


async def test_servers_are_owned_only_and_page_by_creation(contract_store):
    store = contract_store
    alice, bob = await users(store)
    records = [server_record(alice, created) for created in (3, 1, 2)]
    for record in records:
        await store.insert_server(record)
    order = sorted(records, key=lambda r: (r.created, r.server))
    assert await store.list_servers(alice, None, None) == order
    assert await store.list_servers(alice, 1, order[0].server) == order[1:2]
    with pytest.raises(UsageError):
        await store.list_servers(alice, 1, new_id())
    assert await store.list_servers(bob, None, None) == []
    assert await store.get_server(bob, records[0].server) is None
    assert await store.server_owner(records[0].server) == alice
    assert await store.server_owner(new_id()) is None
    renamed = ServerRecord(
        records[0].server,
        alice,
        parse_config({"name": "t", "cpu": "500", "mem": "32"}, records[0].server),
        records[0].created,
    )
    assert not await store.update_server_config(bob, renamed)
    assert await store.update_server_config(alice, renamed)
    assert (await store.get_server(alice, renamed.server)).config.name == "t"
    assert not await store.delete_server(bob, records[1].server)
    assert await store.delete_server(alice, records[1].server)
    assert await store.get_server(alice, records[1].server) is None


async def test_activation_claims_drives_and_deactivation_frees_them(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    disk = drive(alice, 1)
    await store.insert_drive(disk)
    record = server_record(alice)
    await store.insert_server(record)
    await store.activate_server(alice, record.server, "h1", 1234, [Claim(IDE_0_0, disk.drive)])
    active = await store.get_server(alice, record.server)
    assert (active.status, active.host, active.started) == (ACTIVE, "h1", 1234)
    assert record.server in (await store.get_drive(alice, disk.drive)).claimed
    assert [r.server for r in await store.active_servers()] == [record.server]
    assert await store.deactivate_server(alice, record.server)
    stopped = await store.get_server(alice, record.server)
    assert (stopped.status, stopped.host, stopped.started) == (STOPPED, None, None)
    assert (await store.get_drive(alice, disk.drive)).claimed == ()
    assert await store.active_servers() == []


async def test_pool_addresses_in_order_until_full(contract_store):
    store = contract_store
    alice, bob = await users(store)
    got = [await store.insert_ip_from_pool(ip(owner, n), FIRST, LAST) for n, owner in enumerate((alice, bob, alice))]
    assert [r.resource for r in got if r] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert await store.insert_ip_from_pool(ip(bob), FIRST, LAST) is None
    assert [r.resource for r in await store.list_resources(alice, "ip", None, None)] == ["10.0.0.2", "10.0.0.4"]
    assert await store.list_resources(alice, "vlan", None, None) == []
    assert await store.get_resource(bob, "ip", "10.0.0.2") is None
    assert not await store.delete_resource(bob, "ip", "10.0.0.2")
    assert not await store.update_resource(bob, got[0])
    assert await store.delete_resource(alice, "ip", "10.0.0.2")
    assert (await store.insert_ip_from_pool(ip(bob), FIRST, LAST)).resource == "10.0.0.2"


async def test_pages_span_both_types(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    vlan = Resource(new_id(), "vlan", alice, created=2)
    await store.insert_resource(vlan)
    first = await store.insert_ip_from_pool(ip(alice, 1), FIRST, LAST)
    third = await store.insert_ip_from_pool(ip(alice, 3), FIRST, LAST)
    assert [r.resource for r in await store.list_resources(alice, None, None, None)] == [
        first.resource,
        vlan.resource,
        third.resource,
    ]
    assert await store.list_resources(alice, None, 1, vlan.resource) == [third]
    with pytest.raises(UsageError):
        await store.list_resources(alice, "ip", 1, vlan.resource)  # not an IP: an unknown marker


async def test_leases_all_or_nothing(contract_store):
    store = contract_store
    alice, bob = await users(store)
    mine = await store.insert_ip_from_pool(ip(alice), FIRST, LAST)
    assert mine is not None
    sid = await active_server(store, alice)
    leases = await store.lease_ips(
        alice, sid, [(0, "02:00:00:00:00:01", mine.resource)], [(1, "02:00:00:00:00:02")], FIRST, LAST
    )
    assert leases == [
        Lease(sid, 0, "02:00:00:00:00:01", "10.0.0.2", auto=False),
        Lease(sid, 1, "02:00:00:00:00:02", "10.0.0.3", auto=True),
    ]
    assert await store.server_leases(alice, sid) == leases
    assert await store.server_leases(bob, sid) == []
    assert await store.active_leases() == [("h", leases[0]), ("h", leases[1])]

    other = await active_server(store, alice)
    with pytest.raises(BusyError, match=sid):
        await store.lease_ips(alice, other, [(0, "02:00:00:00:00:03", mine.resource)], [], FIRST, LAST)
    with pytest.raises(FullError):  # 10.0.0.4 is free, a second auto NIC finds nothing: neither is kept
        await store.lease_ips(alice, other, [], [(0, "02:00:00:00:00:03"), (1, "02:00:00:00:00:04")], FIRST, LAST)
    assert await store.server_leases(alice, other) == []
    theirs = await active_server(store, bob)
    with pytest.raises(MissingError):
        await store.lease_ips(bob, theirs, [(0, "02:00:00:00:00:05", mine.resource)], [], FIRST, LAST)

    with pytest.raises(BusyError, match=sid):
        await store.delete_resource(alice, "ip", mine.resource)
    await store.release_leases(bob, sid)  # not bob's server: nothing happens
    assert len(await store.server_leases(alice, sid)) == 2
    assert await store.deactivate_server(alice, sid)
    assert await store.server_leases(alice, sid) == []
    assert await store.delete_resource(alice, "ip", mine.resource)


async def test_references_from_stopped_servers_keep_resources(contract_store):
    store = contract_store
    alice, bob = await users(store)
    vlan = Resource(new_id(), "vlan", alice, created=1)
    await store.insert_resource(vlan)
    mine = await store.insert_ip_from_pool(ip(alice), FIRST, LAST)
    assert mine is not None
    sid = new_id()
    config = parse_config(
        {
            "name": "s",
            "cpu": "1000",
            "mem": "64",
            "nic:0:model": "virtio",
            "nic:0:vlan": vlan.resource,
            "vnc": mine.resource,
        },
        sid,
    )
    await store.insert_server(ServerRecord(sid, alice, config, created=1))
    for type_, resource in (("vlan", vlan.resource), ("ip", mine.resource)):
        with pytest.raises(BusyError, match=sid):
            await store.delete_resource(alice, type_, resource)
    assert await store.all_vlan_ids() == {vlan.resource}
    assert await store.delete_server(alice, sid)
    assert await store.delete_resource(alice, "vlan", vlan.resource)
    assert await store.delete_resource(alice, "ip", mine.resource)
    assert await store.all_vlan_ids() == set()
