"""The job runner on an in-memory store: order per resource, bounded concurrency, progress,
failures, leases, and what a restart or a stop does to jobs left running."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from elastic_api.model.job import DONE, FAILED, IMAGE, QUEUED, RUNNING, ImageParams, Job
from elastic_api.service.jobs import SECOND, JobFailed, JobRunner, Progress
from tests.service.fake_jobs import MemoryJobs

NODE = "node-a"


def job(resource: str = "d1", source: str = "s", owner: str = "alice") -> Job:
    return Job(0, IMAGE, owner, resource, ImageParams(source, ""))


def runner(
    store: MemoryJobs,
    holder: str = NODE,
    *,
    lease: float = 60,
    heartbeat: float = 10,
    progress: float = 0.0,
    clock=None,
) -> JobRunner:
    kw = {} if clock is None else {"clock": clock}
    return JobRunner(store, holder, lease_seconds=lease, heartbeat_seconds=heartbeat, progress_seconds=progress, **kw)


class Gates:
    """A handler whose jobs wait for the test to let each one finish."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[Job] = asyncio.Queue()
        self.release: dict[int, asyncio.Event] = {}
        self.running = 0
        self.most = 0
        self.progress: dict[int, Progress] = {}
        self.fail: dict[int, BaseException] = {}

    async def __call__(self, job: Job, progress: Progress) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.progress[job.id] = progress
        try:
            await self.started.put(job)
            await self.release.setdefault(job.id, asyncio.Event()).wait()
            if job.id in self.fail:
                raise self.fail[job.id]
        finally:
            self.running -= 1

    def let(self, job_id: int) -> None:
        self.release.setdefault(job_id, asyncio.Event()).set()


async def until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


@pytest.fixture
async def setup():
    store, gates = MemoryJobs(), Gates()
    jobs = runner(store)
    jobs.register(IMAGE, gates, concurrency=2, idempotent=True)
    await jobs.start()
    yield store, gates, jobs
    await jobs.close()


async def test_jobs_on_one_resource_run_in_order_one_at_a_time(setup):
    store, gates, jobs = setup
    first, second, third = [await jobs.submit(job("d1", f"s{i}")) for i in range(3)]
    assert (await gates.started.get()).id == first.id
    assert store.jobs[second.id].status == QUEUED and gates.running == 1
    gates.let(first.id)
    assert (await gates.started.get()).id == second.id
    gates.let(second.id)
    gates.let(third.id)
    assert (await gates.started.get()).id == third.id
    await until(lambda: all(j.status == DONE for j in store.jobs.values()))
    assert gates.most == 1
    done = store.jobs[third.id]
    assert done.progress == 100 and done.started and done.finished and done.lease_holder is None


async def test_concurrency_is_bounded_across_resources(setup):
    store, gates, jobs = setup
    submitted = [await jobs.submit(job(f"d{i}")) for i in range(4)]
    await until(lambda: gates.running == 2)
    await asyncio.sleep(0.01)
    assert gates.running == 2 and sum(j.status == QUEUED for j in store.jobs.values()) == 2
    for j in submitted:
        gates.let(j.id)
    await until(lambda: all(j.status == DONE for j in store.jobs.values()))
    assert gates.most == 2


async def test_progress_is_live_monotonic_and_stored_sparingly():
    store, gates = MemoryJobs(), Gates()
    jobs = runner(store, progress=3600)  # one write per hour at most: only the first goes
    jobs.register(IMAGE, gates, concurrency=1, idempotent=True)
    try:
        j = await jobs.submit(job())
        await gates.started.get()
        report = gates.progress[j.id]
        seen = []
        for p in (0, 10, 5, 40, 30, 99):
            report(p)
            running = jobs.running_on("d1")
            assert running is not None
            seen.append(running.progress)
        assert seen == [0, 10, 10, 40, 40, 99]  # never goes back
        assert jobs.live(store.jobs[j.id]).progress == 99
        assert store.progress_writes == 0  # the first interval has not passed since the start
        gates.let(j.id)
        await until(lambda: store.jobs[j.id].status == DONE)
        assert jobs.running_on("d1") is None and jobs.live(store.jobs[j.id]).progress == 100
    finally:
        await jobs.close()


async def test_progress_reaches_the_row():
    store, gates = MemoryJobs(), Gates()
    jobs = runner(store, progress=0)
    jobs.register(IMAGE, gates, concurrency=1, idempotent=True)
    try:
        j = await jobs.submit(job())
        await gates.started.get()
        gates.progress[j.id](37)
        await until(lambda: store.jobs[j.id].progress == 37)
        gates.progress[j.id](37)  # the same value again is not written again
        await asyncio.sleep(0.01)
        assert store.progress_writes == 1
        gates.let(j.id)
    finally:
        await jobs.close()


async def test_a_failure_is_recorded_and_the_queue_goes_on(setup):
    store, gates, jobs = setup
    failing, internal, fine = [await jobs.submit(job()) for _ in range(3)]
    gates.fail[failing.id] = JobFailed("image from s failed: no room")
    gates.fail[internal.id] = RuntimeError("bug")
    for j in (failing, internal, fine):
        gates.let(j.id)
    await until(lambda: all(not j.unfinished for j in store.jobs.values()))
    assert store.jobs[failing.id].status == FAILED
    assert store.jobs[failing.id].error == "image from s failed: no room"
    assert store.jobs[internal.id].error == "image job failed: internal error"
    assert store.jobs[fine.id].status == DONE and store.jobs[fine.id].error is None


async def test_a_job_submitted_as_the_queue_ends_is_not_lost(setup):
    store, gates, jobs = setup
    for _ in range(20):
        j = await jobs.submit(job())
        gates.let(j.id)
        await asyncio.sleep(0)
    await until(lambda: all(j.status == DONE for j in store.jobs.values()))


async def test_restart_reruns_idempotent_jobs_and_fails_the_others():
    store = MemoryJobs()
    now = 1000 * SECOND
    left = [await store.add_job(job(f"d{i}")) for i in range(4)]
    mine = await store.claim_job(left[0].id, NODE, now, now + 60 * SECOND)  # this node, before its crash
    expired = await store.claim_job(left[1].id, "node-b", now, now - 1)  # a node that stopped renewing
    alive = await store.claim_job(left[2].id, "node-c", now, now + 60 * SECOND)  # another node, alive
    assert mine and expired and alive
    queued = left[3]

    gates = Gates()
    jobs = runner(store, clock=lambda: now)
    jobs.register(IMAGE, gates, concurrency=4, idempotent=True)
    await jobs.start()
    try:
        started = {(await gates.started.get()).id for _ in range(3)}
        assert started == {mine.id, expired.id, queued.id}
        assert store.jobs[alive.id].lease_holder == "node-c"  # left alone
        for j in started:
            gates.let(j)
        await until(lambda: all(store.jobs[j].status == DONE for j in started))
    finally:
        await jobs.close()

    # A kind that must not run twice is failed instead, with its reason.
    again = await store.add_job(job("d9"))
    await store.claim_job(again.id, NODE, now, now + 60 * SECOND)
    jobs = runner(store, clock=lambda: now)
    jobs.register(IMAGE, Gates(), concurrency=1, idempotent=False)
    await jobs.start()
    await jobs.close()
    assert store.jobs[again.id].status == FAILED and "interrupted" in (store.jobs[again.id].error or "")


async def test_a_stop_puts_running_jobs_back_in_the_queue(setup):
    store, gates, jobs = setup
    j = await jobs.submit(job())
    await gates.started.get()
    await jobs.close()
    stopped = store.jobs[j.id]
    assert stopped.status == QUEUED and stopped.lease_holder is None and stopped.started is None


async def test_the_heartbeat_renews_the_lease_and_a_lost_lease_stops_the_job():
    store, gates = MemoryJobs(), Gates()
    clock = [1000 * SECOND]
    jobs = runner(store, lease=60, heartbeat=0.01, clock=lambda: clock[0])
    jobs.register(IMAGE, gates, concurrency=1, idempotent=True)
    await jobs.start()
    try:
        j = await jobs.submit(job())
        await gates.started.get()
        first = store.jobs[j.id].lease_expires
        assert first is not None
        clock[0] += 5 * SECOND
        await until(lambda: store.jobs[j.id].lease_expires == first + 5 * SECOND)
        # Another node took the job after the lease ran out (as if this one had stalled).
        store.jobs[j.id] = dataclasses.replace(store.jobs[j.id], lease_holder="node-b")
        await until(lambda: gates.running == 0)
        assert jobs.running_on("d1") is None and store.jobs[j.id].status == RUNNING
        assert store.jobs[j.id].lease_holder == "node-b"
    finally:
        await jobs.close()
