"""An in-memory JobStore for the runner's unit tests: the contract (tests/contract/test_jobs.py)
holds the real stores to the same behaviour."""

from __future__ import annotations

import asyncio
import dataclasses

from elastic_api.model.job import DONE, QUEUED, RUNNING, UNFINISHED, Job


class MemoryJobs:
    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.progress_writes = 0

    async def _turn(self) -> None:
        await asyncio.sleep(0)  # a real store answers from another thread: let others run

    async def add_job(self, job: Job) -> Job:
        await self._turn()
        stored = dataclasses.replace(job, id=max(self.jobs, default=0) + 1)
        self.jobs[stored.id] = stored
        return stored

    async def next_job(self, resource: str) -> Job | None:
        await self._turn()
        return next(
            (j for j in sorted(self.jobs.values(), key=lambda j: j.id) if j.resource == resource and j.unfinished), None
        )

    async def claim_job(self, job: int, holder: str, now: int, expires: int) -> Job | None:
        await self._turn()
        found = self.jobs.get(job)
        if found is None or found.status != QUEUED:
            return None
        first = min(j.id for j in self.jobs.values() if j.resource == found.resource and j.unfinished)
        if first != job or any(j.status == RUNNING for j in self.jobs.values() if j.resource == found.resource):
            return None
        claimed = dataclasses.replace(found, status=RUNNING, started=now, lease_holder=holder, lease_expires=expires)
        self.jobs[job] = claimed
        return claimed

    def _held(self, job: int, holder: str | None) -> Job | None:
        found = self.jobs.get(job)
        if found is None or found.status != RUNNING or found.lease_holder != holder:
            return None
        return found

    async def renew_jobs(self, holder: str, jobs: list[int], expires: int) -> list[int]:
        await self._turn()
        held = [j for j in jobs if self._held(j, holder)]
        for j in held:
            self.jobs[j] = dataclasses.replace(self.jobs[j], lease_expires=expires)
        return held

    async def job_progress(self, job: int, holder: str, progress: int) -> None:
        await self._turn()
        self.progress_writes += 1
        found = self._held(job, holder)
        if found is not None:
            self.jobs[job] = dataclasses.replace(found, progress=progress)

    async def finish_job(self, job: int, holder: str | None, status: str, error: str | None, finished: int) -> bool:
        await self._turn()
        found = self._held(job, holder)
        if found is None:
            return False
        self.jobs[job] = dataclasses.replace(
            found,
            status=status,
            error=error,
            finished=finished,
            progress=100 if status == DONE else found.progress,
            lease_holder=None,
            lease_expires=None,
        )
        return True

    async def requeue_job(self, job: int, holder: str | None) -> bool:
        await self._turn()
        found = self._held(job, holder)
        if found is None:
            return False
        self.jobs[job] = dataclasses.replace(
            found, status=QUEUED, progress=0, started=None, lease_holder=None, lease_expires=None
        )
        return True

    async def jobs_of(self, owner: str, resource: str) -> list[Job]:
        await self._turn()
        return [
            j for j in sorted(self.jobs.values(), key=lambda j: j.id) if j.owner == owner and j.resource == resource
        ]

    async def unfinished_jobs(self) -> list[Job]:
        await self._turn()
        return [j for j in sorted(self.jobs.values(), key=lambda j: j.id) if j.status in UNFINISHED]
