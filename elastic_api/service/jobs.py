"""The job runner: persisted background jobs, run per resource in order, a few at once, under a
lease that a heartbeat renews, and resumed or failed after a restart (never left running)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from elastic_api.model.job import DONE, FAILED, QUEUED, RUNNING, Job
from elastic_api.store.base import JobStore

log = logging.getLogger(__name__)

# A handler does the job's work and reports progress (percent) as it goes; it raises JobFailed
# with words for the job's owner, and anything else fails the job as an internal error.
Progress = Callable[[int], None]
Handler = Callable[[Job, Progress], Coroutine[Any, Any, None]]
SECOND = 1_000_000_000


class JobFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Kind:
    handler: Handler
    slots: asyncio.Semaphore
    # A job that may simply run again from the start after an interruption (an image copy
    # rewrites its whole target); others are failed by a restart rather than run twice.
    idempotent: bool


@dataclass
class _Running:
    job: Job
    progress: int = 0
    written: int = 0  # the progress last stored
    written_at: float = 0.0  # monotonic time of that write
    write: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        holder: str,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
        progress_seconds: float,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.holder = holder  # this node's name on the leases it takes (services.lease_holder)
        self.lease = int(lease_seconds * SECOND)
        self.heartbeat_seconds = heartbeat_seconds
        self.progress_seconds = progress_seconds
        self.clock = clock
        self._kinds: dict[str, _Kind] = {}
        self._queues: dict[str, asyncio.Task[None]] = {}  # resource → the task running its jobs
        self._kicks: dict[str, int] = {}  # resource → submissions seen, so no kick is lost
        self._running: dict[str, _Running] = {}  # resource → its job running here
        self._heartbeat: asyncio.Task[None] | None = None
        # Told (kind, "done" or "failed", seconds it ran) of each job this node finishes (the
        # operators' metrics count them).
        self.on_finish: Callable[[str, str, float], None] | None = None

    def register(self, kind: str, handler: Handler, *, concurrency: int, idempotent: bool) -> None:
        self._kinds[kind] = _Kind(handler, asyncio.Semaphore(concurrency), idempotent)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds registered (the operators' metrics show each, at 0 when none are pending)."""
        return tuple(self._kinds)

    # -- what the services ask -------------------------------------------------------------------
    async def submit(self, job: Job) -> Job:
        """Store a new job (queued behind the resource's others) and start its resource's queue."""
        stored = await self.store.add_job(dataclasses.replace(job, status=QUEUED, created=self.clock()))
        self.kick(stored.resource)
        return stored

    def running_on(self, resource: str) -> Job | None:
        """The job this process runs on the resource now, with its live progress."""
        running = self._running.get(resource)
        return None if running is None else dataclasses.replace(running.job, progress=running.progress)

    def live(self, job: Job) -> Job:
        """A stored job with the progress only this process knows yet (the row's lags behind)."""
        running = self._running.get(job.resource)
        if running is None or running.job.id != job.id:
            return job
        return dataclasses.replace(job, progress=max(job.progress, running.progress))

    # -- start and stop ----------------------------------------------------------------------------
    async def start(self) -> None:
        """At start-up: take back the jobs a crash or stop left running, start every queue, and
        the heartbeat that keeps this node's leases."""
        for resource in await self._recover(startup=True):
            self.kick(resource)
        self._heartbeat = asyncio.create_task(self._beat(), name="jobs heartbeat")

    async def close(self) -> None:
        """Stop every job here; the interrupted ones go back to the queue (or fail) at once, so
        the next start, or another node, need not wait for their lease to run out."""
        interrupted = [r.job for r in self._running.values()]
        tasks = [t for t in (self._heartbeat, *self._queues.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in interrupted:
            with contextlib.suppress(Exception):  # the next start recovers what this misses
                await self._interrupted(
                    dataclasses.replace(job, lease_holder=self.holder), "interrupted: the server stopped while it ran"
                )

    async def _recover(self, *, startup: bool = False) -> list[str]:
        """Running jobs whose holder is gone, this node before a restart or any node whose lease
        ran out: back to the queue when their kind may run again, failed otherwise. Returns the
        resources with jobs waiting, in the order of their first job."""
        now = self.clock()
        resources: dict[str, None] = {}
        for job in await self.store.unfinished_jobs():
            if job.status == RUNNING and job.resource not in self._running:
                # A holder from before node names is the installation's ID alone: ours too (the
                # store's requeue by holder lets one node alone take it back).
                ours_before = startup and job.lease_holder in (self.holder, self.holder.partition("/")[0])
                if not ours_before and (job.lease_expires or 0) > now:
                    continue  # its holder runs it and renews its lease (here: one just claimed)
                log.warning(
                    "job %d (%s on %s) was left running by %s: %s",
                    job.id,
                    job.kind,
                    job.resource,
                    job.lease_holder,
                    "queued again" if self._may_rerun(job) else "failed",
                )
                await self._interrupted(job, "interrupted: the server running it stopped")
            resources[job.resource] = None
        return list(resources)

    def _may_rerun(self, job: Job) -> bool:
        kind = self._kinds.get(job.kind)
        return kind is not None and kind.idempotent

    async def _interrupted(self, job: Job, error: str) -> None:
        if self._may_rerun(job):
            await self.store.requeue_job(job.id, job.lease_holder)
        else:
            await self.store.finish_job(job.id, job.lease_holder, FAILED, error, self.clock())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._renew()
                for resource in await self._recover():
                    self.kick(resource)
            except Exception:  # a missed beat is retried at the next; the lease outlasts a few
                log.exception("job heartbeat failed")

    async def _renew(self) -> None:
        running = {r.job.id: r for r in self._running.values()}
        if not running:
            return
        held = set(await self.store.renew_jobs(self.holder, list(running), self.clock() + self.lease))
        for job_id, lost in running.items():
            if job_id not in held and lost.task is not None:
                # Another node took it over after our lease ran out: its work is no longer ours.
                log.warning("job %d on %s: lease lost, stopping it here", job_id, lost.job.resource)
                lost.task.cancel()

    # -- the queues --------------------------------------------------------------------------------
    def kick(self, resource: str) -> None:
        """Run the resource's queued jobs, unless its queue runs already (it will see them)."""
        self._kicks[resource] = self._kicks.get(resource, 0) + 1
        if resource not in self._queues:
            self._queues[resource] = asyncio.create_task(self._run_queue(resource), name=f"jobs on {resource}")

    async def _run_queue(self, resource: str) -> None:
        try:
            while True:
                seen = self._kicks.get(resource, 0)
                job = await self.store.next_job(resource)
                if job is None or job.status != QUEUED or job.kind not in self._kinds:
                    # Empty, running elsewhere, or a kind this version cannot run. A submission
                    # that came while this looked goes round again: its kick found this task.
                    if self._kicks.get(resource, 0) == seen:
                        return
                    continue
                kind = self._kinds[job.kind]
                async with kind.slots:
                    claimed = await self.store.claim_job(job.id, self.holder, self.clock(), self.clock() + self.lease)
                    if claimed is not None:
                        await self._run(kind, claimed)
        finally:
            self._queues.pop(resource, None)
            self._kicks.pop(resource, None)

    async def _run(self, kind: _Kind, job: Job) -> None:
        # Known as running before the handler's first step: a write checking for a job from here
        # on is refused, and the handler waits for the writes that started before.
        running = self._running[job.resource] = _Running(job, written_at=time.monotonic())
        began = running.written_at
        try:
            error: str | None = None
            running.task = asyncio.create_task(
                kind.handler(job, lambda p: self._progress(running, p)), name=f"job {job.id}"
            )
            try:
                await running.task
            except JobFailed as e:
                error = e.message
            except asyncio.CancelledError:
                if running.task.cancelled() and not _cancelling():
                    return  # the lease was lost: the job is another node's now
                raise  # this process stops: close() puts the job back
            except Exception:
                log.exception("job %d (%s on %s) failed", job.id, job.kind, job.resource)
                error = f"{job.kind} job failed: internal error"
            finally:
                if running.write is not None:
                    running.write.cancel()
            if error is not None:
                log.warning("job %d (%s on %s) failed: %s", job.id, job.kind, job.resource, error)
            await self.store.finish_job(job.id, self.holder, FAILED if error else DONE, error, self.clock())
            if self.on_finish is not None:
                self.on_finish(job.kind, FAILED if error else DONE, time.monotonic() - began)
        finally:
            del self._running[job.resource]

    def _progress(self, running: _Running, percent: int) -> None:
        """A handler's report: live at once (and never going back), stored at most once per
        progress_seconds, one write at a time, so a copy's many reports cost the store little."""
        running.progress = max(running.progress, min(100, max(0, percent)))
        now = time.monotonic()
        if (
            running.progress == running.written
            or now - running.written_at < self.progress_seconds
            or (running.write is not None and not running.write.done())
        ):
            return
        running.written, running.written_at = running.progress, now
        running.write = asyncio.create_task(self._store_progress(running.job.id, running.progress))

    async def _store_progress(self, job_id: int, progress: int) -> None:
        try:
            await self.store.job_progress(job_id, self.holder, progress)
        except Exception as e:  # the live value stands; the row is only a hint after a crash
            log.warning("job %d: progress not stored: %s", job_id, e)


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not only a task it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
