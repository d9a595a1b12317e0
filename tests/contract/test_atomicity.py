"""Store contract: what store/base.py says one transaction covers, and that a refused write, or
one aimed at another user's object, changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from elastic_api.errors import BusyError, FullError, MissingError
from elastic_api.model.ids import new_id
from elastic_api.model.device import Device
from elastic_api.model.job import ImageParams, Job
from elastic_api.model.server_record import ACTIVE, STOPPED, Claim
from tests.contract.conftest import active_server, drive, ip, server_record, users

FIRST, LAST = "10.0.0.2", "10.0.0.4"

IDE_0_0, IDE_0_1 = Device("ide", 0, 0), Device("ide", 0, 1)


async def stopped_server(store, owner: str) -> str:
    record = server_record(owner)
    await store.insert_server(record)
    return record.server


async def assert_stopped(store, owner: str, server: str) -> None:
    record = await store.get_server(owner, server)
    assert (record.status, record.host, record.started) == (STOPPED, None, None)


async def test_a_refused_activation_claims_nothing_and_stays_stopped(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    free, held = drive(alice, 1, claim_type="exclusive"), drive(alice, 2, claim_type="exclusive")
    for d in (free, held):
        await store.insert_drive(d)
    holder = await stopped_server(store, alice)
    await store.activate_server(alice, holder, "h1", 1, [Claim(IDE_0_0, held.drive)])
    other = await stopped_server(store, alice)
    with pytest.raises(BusyError, match=holder):
        await store.activate_server(alice, other, "h2", 2, [Claim(IDE_0_0, free.drive), Claim(IDE_0_1, held.drive)])
    await assert_stopped(store, alice, other)
    assert (await store.get_drive(alice, free.drive)).claimed == ()  # the claim before the refused one is undone
    assert (await store.get_drive(alice, held.drive)).claimed == (holder,)
    assert [r.server for r in await store.active_servers()] == [holder]


async def test_activation_refuses_imaging_gone_drives_and_servers_it_may_not_start(contract_store):
    store = contract_store
    alice, bob = await users(store)
    disk, imaged = drive(alice, 1), drive(alice, 2)
    for d in (disk, imaged):
        await store.insert_drive(d)
    await store.add_job(Job(0, "image", alice, imaged.drive, ImageParams(disk.drive, "")))
    sid = await stopped_server(store, alice)
    for claims in ([Claim(IDE_0_0, disk.drive), Claim(IDE_0_1, imaged.drive)], [Claim(IDE_0_0, new_id())]):
        with pytest.raises(BusyError):
            await store.activate_server(alice, sid, "h", 1, claims)
        await assert_stopped(store, alice, sid)
    for user, server in ((bob, sid), (alice, new_id())):  # another user's server, a missing one
        with pytest.raises(BusyError):
            await store.activate_server(user, server, "h", 1, [Claim(IDE_0_0, disk.drive)])
    await assert_stopped(store, alice, sid)
    assert (await store.get_drive(alice, disk.drive)).claimed == ()
    await store.activate_server(alice, sid, "h", 1, [Claim(IDE_0_0, disk.drive)])
    with pytest.raises(BusyError):  # already active: the first activation's host and time stay
        await store.activate_server(alice, sid, "h2", 2, [])
    record = await store.get_server(alice, sid)
    assert (record.status, record.host, record.started) == (ACTIVE, "h", 1)


async def test_a_shared_drive_is_claimed_by_many_an_exclusive_one_by_one_racer(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    shared, exclusive = drive(alice, 1, claim_type="shared"), drive(alice, 2, claim_type="exclusive")
    for d in (shared, exclusive):
        await store.insert_drive(d)
    servers = [await stopped_server(store, alice) for _ in range(4)]
    outcomes = await asyncio.gather(
        *(
            store.activate_server(alice, s, "h", 1, [Claim(IDE_0_0, shared.drive), Claim(IDE_0_1, exclusive.drive)])
            for s in servers
        ),
        return_exceptions=True,
    )
    winners = [s for s, outcome in zip(servers, outcomes, strict=True) if outcome is None]
    assert len(winners) == 1 and all(isinstance(o, BusyError) for o in outcomes if o is not None)
    assert (await store.get_drive(alice, exclusive.drive)).claimed == tuple(winners)
    assert (await store.get_drive(alice, shared.drive)).claimed == tuple(winners)
    rest = [s for s in servers if s not in winners]
    for s in rest:
        await store.activate_server(alice, s, "h", 1, [Claim(IDE_0_0, shared.drive)])
    assert (await store.get_drive(alice, shared.drive)).claimed == tuple(sorted(servers))


async def test_deactivation_and_deletion_of_another_users_server_change_nothing(contract_store):
    store = contract_store
    alice, bob = await users(store)
    disk = drive(alice, 1)
    await store.insert_drive(disk)
    sid = await stopped_server(store, alice)
    await store.activate_server(alice, sid, "h", 1, [Claim(IDE_0_0, disk.drive)])
    leases = await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)
    assert not await store.deactivate_server(bob, sid)
    assert not await store.delete_server(bob, sid)
    assert (await store.get_server(alice, sid)).status == ACTIVE
    assert (await store.get_drive(alice, disk.drive)).claimed == (sid,)
    assert await store.server_leases(alice, sid) == leases
    assert not await store.deactivate_server(alice, new_id())


async def test_deleting_an_active_server_releases_its_claims_and_leases(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    disk = drive(alice, 1)
    await store.insert_drive(disk)
    sid = await stopped_server(store, alice)
    await store.activate_server(alice, sid, "h", 1, [Claim(IDE_0_0, disk.drive)])
    await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)
    assert await store.delete_server(alice, sid)
    assert (await store.get_drive(alice, disk.drive)).claimed == ()
    assert await store.active_leases() == []
    assert await store.active_servers() == []


async def test_a_claimed_drive_cannot_be_deleted(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    disk = drive(alice, 1)
    await store.insert_drive(disk)
    sid = await stopped_server(store, alice)
    await store.activate_server(alice, sid, "h", 1, [Claim(IDE_0_0, disk.drive)])
    with pytest.raises(Exception):  # noqa: B017 - the engine's own integrity error
        await store.delete_drive(alice, disk.drive)
    assert (await store.get_drive(alice, disk.drive)).claimed == (sid,)
    assert await store.deactivate_server(alice, sid)
    assert await store.delete_drive(alice, disk.drive)


async def test_updates_change_only_what_they_name(contract_store):
    store = contract_store
    alice, bob = await users(store)
    disk = drive(alice, 1, wrapped_key=b"k")
    await store.insert_drive(disk)
    await store.count_drive_io(alice, disk.drive, read_bytes=7)
    changed = dataclasses.replace(
        disk,
        name="e",
        size=2048,
        claim_type="shared",
        readers=(bob,),
        tags=("t",),
        format="qcow2",
        encryption="aes-xts-plain",
        tier="ssd",
        created=9,
        read_bytes=0,
        wrapped_key=None,
    )
    assert await store.update_drive(alice, changed)
    got = await store.get_drive(alice, disk.drive)
    assert (got.name, got.size, got.claim_type, got.readers, got.tags) == ("e", 2048, "shared", (bob,), ("t",))
    assert (got.format, got.encryption, got.tier, got.created, got.read_bytes, got.wrapped_key) == (
        "raw",
        "none",
        "disk",
        1,
        7,
        b"k",
    )
    sid = await active_server(store, alice)
    record = await store.get_server(alice, sid)
    renamed = dataclasses.replace(
        record, config=dataclasses.replace(record.config, name="t"), status=STOPPED, host=None, started=None
    )
    assert await store.update_server_config(alice, renamed)
    got_server = await store.get_server(alice, sid)
    assert (got_server.config.name, got_server.status, got_server.host) == ("t", ACTIVE, "h")


# What a drive shows of its jobs, and that only a job's holder moves it: tests/contract/test_jobs.py.


async def test_a_refused_lease_keeps_what_the_server_held(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    sid = await active_server(store, alice)
    held = await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)
    for static, auto, error in (
        ([(0, "02:00:00:00:00:01", "10.9.9.9")], [], MissingError),
        ([], [(0, "02:00:00:00:00:01"), (1, "02:"), (2, "03:"), (3, "04:")], FullError),
    ):
        with pytest.raises(error):
            await store.lease_ips(alice, sid, static, auto, FIRST, LAST)
        assert await store.server_leases(alice, sid) == held
    with pytest.raises(MissingError):
        await store.lease_ips(alice, new_id(), [], [(0, "02:")], FIRST, LAST)


async def test_concurrent_picks_and_counts_never_collide_nor_get_lost(contract_store):
    store = contract_store
    alice, bob = await users(store)
    sid = await active_server(store, alice)
    await store.lease_ips(alice, sid, [], [(0, "02:00:00:00:00:01")], FIRST, LAST)  # takes 10.0.0.2
    got = await asyncio.gather(
        *(store.insert_ip_from_pool(ip(owner, n), FIRST, LAST) for n, owner in enumerate((alice, bob, alice)))
    )
    assert sorted(r.resource for r in got if r) == ["10.0.0.3", "10.0.0.4"] and got.count(None) == 1
    disk = drive(alice, 1, readers=(bob,))
    await store.insert_drive(disk)
    await asyncio.gather(
        *(store.count_drive_io(user, disk.drive, read_bytes=1, write_requests=2) for user in [alice, bob] * 10)
    )
    got_drive = await store.get_drive(alice, disk.drive)
    assert (got_drive.read_bytes, got_drive.write_requests) == (20, 40)


async def test_quota_changes_are_one_transaction_and_a_cleared_key_wins(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    assert await store.set_quota_overrides(alice, {"drives": 3, "cpu": 10}, [])
    assert await store.set_quota_overrides(alice, {"drives": 5, "mem": 1}, ["drives", "cpu"])
    assert await store.quota_overrides(alice) == {"mem": 1}
    overrides, usage = await store.quota_state(new_id())
    assert overrides == {} and usage == type(usage)()
