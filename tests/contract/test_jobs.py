"""Store contract: jobs, their order per resource, leases, and what a drive shows of its image jobs."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_api.errors import BusyError
from elastic_api.model.device import Device
from elastic_api.model.job import DONE, FAILED, IMAGE, QUEUED, RUNNING, ImageParams, Job
from elastic_api.model.server_record import Claim
from tests.contract.conftest import drive, server_record, users


def image_job(owner: str, resource: str, source: str = "s", created: int = 1) -> Job:
    return Job(0, IMAGE, owner, resource, ImageParams(source, "gzip"), created=created)


async def test_jobs_are_added_in_order_and_claimed_first_first_one_at_a_time(contract_store):
    store = contract_store
    alice, bob = await users(store)
    first = await store.add_job(image_job(alice, "r1", "a"))
    second = await store.add_job(image_job(alice, "r1", "b"))
    other = await store.add_job(image_job(bob, "r2"))
    assert first.id < second.id < other.id and first.status == QUEUED
    assert first.params == ImageParams("a", "gzip") and first.created == 1
    assert await store.next_job("r1") == first
    assert await store.claim_job(second.id, "n1", 10, 100) is None  # not first on its resource
    claimed = await store.claim_job(first.id, "n1", 10, 100)
    assert claimed == dataclasses.replace(first, status=RUNNING, started=10, lease_holder="n1", lease_expires=100)
    assert await store.claim_job(first.id, "n2", 11, 100) is None  # running already
    assert await store.next_job("r1") == claimed
    assert await store.claim_job(other.id, "n2", 12, 100) is not None  # another resource runs at once
    assert await store.jobs_of(alice, "r1") == [claimed, second]
    assert await store.jobs_of(bob, "r1") == []
    assert [j.id for j in await store.unfinished_jobs()] == [first.id, second.id, other.id]

    assert await store.finish_job(first.id, "n1", DONE, None, 20)
    assert await store.claim_job(second.id, "n1", 21, 100) is not None  # next in line once it is done
    assert not await store.finish_job(first.id, "n1", DONE, None, 22)  # finished already


async def test_leases_progress_and_finishing_belong_to_the_holder(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    job = await store.add_job(image_job(alice, "r"))
    await store.claim_job(job.id, "n1", 10, 100)
    assert await store.renew_jobs("n1", [job.id, 999], 200) == [job.id]
    assert await store.renew_jobs("n2", [job.id], 300) == []
    await store.job_progress(job.id, "n2", 50)  # not the holder: nothing
    await store.job_progress(job.id, "n1", 40)
    (row,) = await store.jobs_of(alice, "r")
    assert row.lease_expires == 200 and row.progress == 40
    assert not await store.finish_job(job.id, "n2", FAILED, "x", 30)
    assert await store.finish_job(job.id, "n1", FAILED, "no room", 30)
    (row,) = await store.jobs_of(alice, "r")
    assert (row.status, row.error, row.finished, row.progress, row.lease_holder) == (FAILED, "no room", 30, 40, None)
    assert await store.unfinished_jobs() == []


async def test_a_requeued_job_keeps_its_place_and_starts_afresh(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    first = await store.add_job(image_job(alice, "r"))
    await store.add_job(image_job(alice, "r"))
    await store.claim_job(first.id, "n1", 10, 100)
    await store.job_progress(first.id, "n1", 60)
    assert not await store.requeue_job(first.id, "n2")
    assert await store.requeue_job(first.id, "n1")
    again = await store.next_job("r")
    assert again == first  # queued, no progress, no start, no lease: as it was added


async def test_only_the_last_finished_job_of_a_kind_is_kept(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    for n in range(3):
        job = await store.add_job(image_job(alice, "r", created=n))
        await store.claim_job(job.id, "n1", n, 100)
        await store.finish_job(job.id, "n1", DONE, None, n)
    assert [j.id for j in await store.jobs_of(alice, "r")] == [job.id]


async def test_a_drive_shows_its_pending_image_job_and_its_last_error(contract_store):
    store = contract_store
    alice, bob = await users(store)
    target = drive(alice, 1, readers=(bob,))
    await store.insert_drive(target)
    assert (await store.get_drive(alice, target.drive)).image_job is None

    first = await store.add_job(image_job(alice, target.drive, "a", created=10))
    second = await store.add_job(image_job(alice, target.drive, "b", created=11))
    assert (await store.get_drive(alice, target.drive)).image_job == first
    running = await store.claim_job(first.id, "n1", 12, 100)
    await store.job_progress(first.id, "n1", 30)
    for user in (alice, bob):  # readers see it too, in lists as in gets
        assert (await store.get_drive(user, target.drive)).image_job == dataclasses.replace(running, progress=30)
        (listed,) = await store.list_drives(user, None, None)
        assert listed.image_job == dataclasses.replace(running, progress=30)

    # The first fails while the second waits: the failure shows beside the queued job.
    await store.finish_job(first.id, "n1", FAILED, "image from a failed: no room", 13)
    shown = await store.get_drive(alice, target.drive)
    assert shown.image_job == second and shown.imaging_error == "image from a failed: no room"
    await store.claim_job(second.id, "n1", 14, 100)
    await store.finish_job(second.id, "n1", DONE, None, 15)
    shown = await store.get_drive(alice, target.drive)
    assert shown.image_job is None and shown.imaging_error is None

    # A failure stays until another job is asked for.
    third = await store.add_job(image_job(alice, target.drive, created=16))
    await store.claim_job(third.id, "n1", 17, 100)
    await store.finish_job(third.id, "n1", FAILED, "broken", 18)
    assert (await store.get_drive(alice, target.drive)).imaging_error == "broken"
    fourth = await store.add_job(image_job(alice, target.drive, created=19))
    shown = await store.get_drive(alice, target.drive)
    assert shown.image_job == fourth and shown.imaging_error is None

    # An update of the drive leaves its jobs alone, and its destroy takes them with it.
    assert await store.update_drive(alice, dataclasses.replace(shown, name="renamed", image_job=None))
    assert (await store.get_drive(alice, target.drive)).image_job == fourth
    assert await store.delete_drive(alice, target.drive)
    assert await store.jobs_of(alice, target.drive) == [] and await store.unfinished_jobs() == []


async def test_a_drive_with_a_pending_job_cannot_be_claimed(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    disk = drive(alice, 1)
    await store.insert_drive(disk)
    job = await store.add_job(image_job(alice, disk.drive))
    record = server_record(alice)
    await store.insert_server(record)
    with pytest.raises(BusyError):
        await store.activate_server(alice, record.server, "h", 1, [Claim(Device("ide", 0, 0), disk.drive)])
    await store.claim_job(job.id, "n1", 1, 100)
    await store.finish_job(job.id, "n1", DONE, None, 2)
    await store.activate_server(alice, record.server, "h", 1, [Claim(Device("ide", 0, 0), disk.drive)])
    assert (await store.get_drive(alice, disk.drive)).claimed == (record.server,)
