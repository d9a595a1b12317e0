"""Store contract under concurrency: what PostgreSQL's many connections could get wrong where
SQLite's one writer cannot. Each race also runs across two stores on one database (two nodes)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from elastic_api.config import Config
from elastic_api.errors import BusyError, QuotaExceeded
from elastic_api.model.device import Device
from elastic_api.model.job import RUNNING, ImageParams, Job
from elastic_api.model.quota import Quota, Usage
from elastic_api.model.server_record import Claim
from elastic_api.service.quotas import QuotaService
from elastic_api.store.sqlite import SqliteStore
from tests.contract.conftest import active_server, drive, ip, server_record, twin, users


async def test_fifty_concurrent_drive_creates_under_quota_admission_are_exact(contract_store):
    store = contract_store
    alice, bob = await users(store)
    quotas = QuotaService(Config(quotas=Quota(drives=20, drive_bytes=30 * 1024)), store)

    async def create(owner: str, n: int) -> None:
        async with quotas.drives(owner, count=1, size=1024):
            await store.insert_drive(drive(owner, n))

    outcomes = await asyncio.gather(
        *(create(alice, n) for n in range(50)), *(create(bob, n) for n in range(25)), return_exceptions=True
    )
    assert all(o is None or isinstance(o, QuotaExceeded) for o in outcomes), outcomes
    assert outcomes[:50].count(None) == 20 and outcomes[50:].count(None) == 20
    assert (await store.usage(alice)).drives == 20 and len(await store.list_drives(alice, None, None)) == 20
    assert (await store.usage(bob)).drives == 20
    async with quotas.drives(alice, count=0, size=0):  # nothing grows: admitted whatever the count
        pass


async def test_two_nodes_racing_for_one_exclusive_drive_one_wins(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    async with twin(store) as other:
        for round_ in range(5):
            exclusive = drive(alice, round_, claim_type="exclusive")
            await store.insert_drive(exclusive)
            servers = [server_record(alice) for _ in range(6)]
            for record in servers:
                await store.insert_server(record)
            outcomes = await asyncio.gather(
                *(
                    (store if n % 2 else other).activate_server(
                        alice, record.server, f"h{n}", 1, [Claim(Device("ide", 0, 0), exclusive.drive)]
                    )
                    for n, record in enumerate(servers)
                ),
                return_exceptions=True,
            )
            winners = [r.server for r, o in zip(servers, outcomes, strict=True) if o is None]
            assert len(winners) == 1 and all(isinstance(o, BusyError) for o in outcomes if o is not None), outcomes
            seen = await other.get_drive(alice, exclusive.drive)
            assert seen is not None and seen.claimed == tuple(winners)
            ours = {s.server for s in servers}
            assert [r.server for r in await store.active_servers() if r.server in ours] == winners


async def test_an_activation_and_an_image_job_on_one_drive_never_both_go_ahead(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    async with twin(store) as other:
        for _ in range(5):
            disk = drive(alice, 1)
            await store.insert_drive(disk)
            record = server_record(alice)
            await store.insert_server(record)
            activation: BaseException | None
            job: BaseException | Job
            activation, job = await asyncio.gather(
                store.activate_server(alice, record.server, "h", 1, [Claim(Device("ide", 0, 0), disk.drive)]),
                other.add_job(Job(0, "image", alice, disk.drive, ImageParams("s", ""))),
                return_exceptions=True,
            )
            assert not isinstance(job, BaseException)
            # Either the activation went first (and the job waits behind a claimed drive, which the
            # caller checks), or the job did and the activation was refused.
            if activation is None:
                assert (await store.get_drive(alice, disk.drive)).claimed == (record.server,)
            else:
                assert isinstance(activation, BusyError)
                assert (await store.get_server(alice, record.server)).status == "stopped"
            await store.deactivate_server(alice, record.server)


async def test_concurrent_ip_picks_on_two_nodes_are_distinct(contract_store):
    store = contract_store
    alice, bob = await users(store)
    first, last = "10.1.0.1", "10.1.0.40"
    async with twin(store) as other:
        servers = [await active_server(store, owner) for owner in (alice, bob) * 5]
        picks = await asyncio.gather(
            *(
                (store if n % 2 else other).insert_ip_from_pool(ip(owner, n), first, last)
                for n, owner in enumerate((alice, bob) * 10)
            ),
            *(
                (other if n % 2 else store).lease_ips(
                    owner, sid, [], [(0, "02:00:00:00:00:01"), (1, "02:00:00:00:00:02")], first, last
                )
                for n, (owner, sid) in enumerate(zip((alice, bob) * 5, servers, strict=True))
            ),
        )
        resources = [r.resource for r in picks[:20] if r is not None]
        leased = [lease.ip for leases in picks[20:] for lease in leases]
        assert len(resources) == 20 and len(leased) == 20
        everything = sorted(resources + leased, key=lambda a: int(a.rsplit(".", 1)[1]))
        assert everything == [f"10.1.0.{n}" for n in range(1, 41)]
        assert await store.insert_ip_from_pool(ip(alice), first, last) is None
        assert len(await other.active_leases()) == 20


async def test_two_holders_claiming_every_job_get_one_each_and_one_per_resource(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    async with twin(store) as other:
        jobs = [
            await store.add_job(Job(0, "image", alice, f"r{n % 6}", ImageParams(f"s{n}", ""), created=n))
            for n in range(18)
        ]
        outcomes = await asyncio.gather(
            *(
                node.claim_job(job.id, holder, 10, 100)
                for job in jobs
                for node, holder in ((store, "n1"), (other, "n2"))
            )
        )
        claimed = [o for o in outcomes if o is not None]
        # Each resource's first job, each by one holder; the others wait behind it.
        firsts = [min(j.id for j in jobs if j.resource == f"r{r}") for r in range(6)]
        assert sorted(j.id for j in claimed) == sorted(firsts)
        running = [j for j in await other.unfinished_jobs() if j.status == RUNNING]
        assert sorted(j.id for j in running) == sorted(j.id for j in claimed)
        assert {j.id: j.lease_holder for j in running} == {j.id: j.lease_holder for j in claimed}
        # Finishing one lets exactly one of the racers take the next job on that resource.
        done = claimed[0]
        assert await (store if done.lease_holder == "n1" else other).finish_job(
            done.id, done.lease_holder, "done", None, 20
        )
        following = min(j.id for j in jobs if j.resource == done.resource and j.id != done.id)
        again = await asyncio.gather(
            store.claim_job(following, "n1", 21, 100), other.claim_job(following, "n2", 21, 100)
        )
        assert sum(o is not None for o in again) == 1
        assert dataclasses.replace(next(o for o in again if o is not None), lease_holder=None).status == RUNNING


async def test_quota_admission_is_exact_across_two_nodes(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    config = Config(quotas=Quota(drives=20, ips=3))
    async with twin(store) as second:
        # A SQLite file belongs to one process, which keeps its holds in memory: there the second
        # node is a second service over the same store.
        other = store if isinstance(store, SqliteStore) else second
        nodes = [QuotaService(config, store), QuotaService(config, other)]

        async def create(n: int) -> None:
            async with nodes[n % 2].drives(alice, count=1, size=1024):
                await asyncio.sleep(0.01)  # the volume being made: the other node admits meanwhile
                await (store, other)[n % 2].insert_drive(drive(alice, n))

        outcomes = await asyncio.gather(*(create(n) for n in range(50)), return_exceptions=True)
        assert all(o is None or isinstance(o, QuotaExceeded) for o in outcomes), outcomes
        assert outcomes.count(None) == 20 and (await other.usage(alice)).drives == 20
        # Every hold went with its command: the IPs' admission is whole again.
        async with nodes[0].ips(alice, count=3):
            pass


async def test_a_quota_hold_counts_until_released_or_lapsed(contract_store):
    store = contract_store
    alice, bob = await users(store)
    limits = Quota(drives=2)
    first = await store.hold_quota(alice, Usage(drives=1), limits, 10, 100)
    await store.hold_quota(alice, Usage(drives=1), limits, 10, 50)
    with pytest.raises(QuotaExceeded, match="drives 3 of 2"):
        await store.hold_quota(alice, Usage(drives=1), limits, 20, 100)
    assert await store.hold_quota(bob, Usage(drives=2), limits, 20, 100)  # per user
    later = await store.hold_quota(alice, Usage(drives=1), limits, 50, 100)  # the second hold lapsed at 50
    await store.release_quota(first)
    await store.release_quota(first)  # gone already: nothing
    await store.set_quota_overrides(alice, {"drives": 3}, [])
    await store.hold_quota(alice, Usage(drives=2), limits, 60, 100)  # the user's own limit counts
    with pytest.raises(QuotaExceeded):
        await store.hold_quota(alice, Usage(drives=1), limits, 60, 100)
    await store.release_quota(later)
    await store.insert_drive(drive(alice, 1))  # what the user holds counts too
    with pytest.raises(QuotaExceeded):
        await store.hold_quota(alice, Usage(drives=1), limits, 60, 100)
