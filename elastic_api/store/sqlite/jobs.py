"""Jobs: queued and running in order per resource under a node's lease, and the last finished
one per resource and kind, which says how its resource's last job of that kind went."""

from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.model.job import DONE, KEPT, QUEUED, RUNNING, Job, params_json, parse_params
from elastic_api.store.sqlite.engine import SqliteEngine

JOB_COLUMNS = (
    "id",
    "kind",
    "owner",
    "resource",
    "params",
    "status",
    "progress",
    "created",
    "started",
    "finished",
    "error",
    "lease_holder",
    "lease_expires",
)
_COLUMNS = ", ".join(JOB_COLUMNS)
_UNFINISHED = f"status IN ('{QUEUED}', '{RUNNING}')"


def job_row(row: tuple[Any, ...] | list[Any]) -> Job:
    """A Job from its columns in JOB_COLUMNS order."""
    (id_, kind, owner, resource, params, status, progress, created, started, finished, error, holder, expires) = row
    return Job(
        id=id_,
        kind=kind,
        owner=owner,
        resource=resource,
        params=parse_params(kind, params),
        status=status,
        progress=progress,
        created=created,
        started=started,
        finished=finished,
        error=error,
        lease_holder=holder,
        lease_expires=expires,
    )


def pending_job_json(resource: str, kind: str) -> str:
    """SQL for one column: the first unfinished job of `kind` on the row named `resource` (its
    running one, else the first queued) as a JSON array of JOB_COLUMNS, or NULL."""
    return (
        f"(SELECT json_array({_COLUMNS}) FROM jobs WHERE resource = {resource} AND kind = '{kind}'"
        f" AND {_UNFINISHED} ORDER BY id LIMIT 1)"
    )


def last_error(resource: str, kind: str) -> str:
    """SQL for one column: why the last finished job of `kind` on `resource` failed (NULL if it
    did not), until a job of that kind is added after it finished: the mark is for the owner to
    see, and asking again clears it."""
    return (
        f"(SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM jobs n WHERE n.resource = f.resource"
        f" AND n.kind = f.kind AND n.created > f.finished) THEN f.error END FROM jobs f"
        f" WHERE f.resource = {resource} AND f.kind = '{kind}' AND f.finished IS NOT NULL"
        f" ORDER BY f.id DESC LIMIT 1)"
    )


class JobRows(SqliteEngine):
    """Jobs and their leases."""

    async def add_job(self, job: Job) -> Job:
        def add(db: sqlite3.Connection) -> Job:
            cursor = db.execute(
                "INSERT INTO jobs (kind, owner, resource, params, status, created) VALUES (?, ?, ?, ?, ?, ?)",
                (job.kind, job.owner, job.resource, params_json(job.params), QUEUED, job.created),
            )
            return Job(
                int(cursor.lastrowid or 0), job.kind, job.owner, job.resource, job.params, QUEUED, created=job.created
            )

        return await self._write(add)

    def _job(self, job: int) -> Job | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job,)).fetchone()
        return job_row(row) if row else None

    async def next_job(self, resource: str) -> Job | None:
        def first() -> Job | None:
            row = self.db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE resource = ? AND {_UNFINISHED} ORDER BY id LIMIT 1", (resource,)
            ).fetchone()
            return job_row(row) if row else None

        return await self._run(first)

    async def claim_job(self, job: int, holder: str, now: int, expires: int) -> Job | None:
        def claim(db: sqlite3.Connection) -> Job | None:
            # Only the resource's first unfinished job, and only while it is queued: that one
            # condition keeps a resource's jobs in order and one at a time, across nodes too.
            updated = db.execute(
                "UPDATE jobs SET status = ?, started = ?, lease_holder = ?, lease_expires = ?"
                " WHERE id = ? AND status = ? AND id = (SELECT min(o.id) FROM jobs o"
                f" WHERE o.resource = jobs.resource AND o.{_UNFINISHED})",
                (RUNNING, now, holder, expires, job, QUEUED),
            ).rowcount
            return self._job(job) if updated else None

        return await self._write(claim)

    async def renew_jobs(self, holder: str, jobs: list[int], expires: int) -> list[int]:
        def renew(db: sqlite3.Connection) -> list[int]:
            held = []
            for job in jobs:
                if db.execute(
                    "UPDATE jobs SET lease_expires = ? WHERE id = ? AND status = ? AND lease_holder = ?",
                    (expires, job, RUNNING, holder),
                ).rowcount:
                    held.append(job)
            return held

        return await self._write(renew)

    async def job_progress(self, job: int, holder: str, progress: int) -> None:
        await self._execute(
            "UPDATE jobs SET progress = ? WHERE id = ? AND status = ? AND lease_holder = ?",
            (progress, job, RUNNING, holder),
        )

    async def finish_job(self, job: int, holder: str | None, status: str, error: str | None, finished: int) -> bool:
        def finish(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished = ?,"
                " progress = CASE WHEN ? = ? THEN 100 ELSE progress END, lease_holder = NULL, lease_expires = NULL"
                " WHERE id = ? AND status = ? AND lease_holder IS ? RETURNING resource, kind",
                (status, error, finished, status, DONE, job, RUNNING, holder),
            ).fetchone()
            if row is None:
                return False
            if row[1] in KEPT:  # history (ECS actions): every one is kept
                return True
            # Only the last finished job of a kind says anything about its resource: older ones go.
            db.execute(
                "DELETE FROM jobs WHERE resource = ? AND kind = ? AND id < ? AND finished IS NOT NULL",
                (row[0], row[1], job),
            )
            return True

        return await self._write(finish)

    async def requeue_job(self, job: int, holder: str | None) -> bool:
        updated = await self._execute(
            "UPDATE jobs SET status = ?, progress = 0, started = NULL, lease_holder = NULL, lease_expires = NULL"
            " WHERE id = ? AND status = ? AND lease_holder IS ?",
            (QUEUED, job, RUNNING, holder),
        )
        return updated == 1

    async def jobs_of(self, owner: str, resource: str) -> list[Job]:
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE resource = ? AND owner = ? ORDER BY id", (resource, owner)
            ).fetchall()
        )
        return [job_row(row) for row in rows]

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._run(
            lambda: self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE {_UNFINISHED} ORDER BY id").fetchall()
        )
        return [job_row(row) for row in rows]
