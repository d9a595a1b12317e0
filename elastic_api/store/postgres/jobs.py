"""Jobs: queued and running in order per resource under a node's lease, and the last finished
one per resource and kind. Several nodes claim from one table: a resource's queue is changed
(a job added, a job claimed) under an advisory lock on the resource, so IDs are in commit order
within a resource and a claim's "first, and none running" check cannot interleave with another's."""

from __future__ import annotations

from typing import Any

from elastic_api.model.job import DONE, KEPT, QUEUED, RUNNING, Job, params_json, parse_params
from elastic_api.store.postgres.engine import Conn, PostgresEngine, lock

JOB_COLUMNS = (
    "id",
    "kind",
    "owner",
    "resource",
    "params::text",
    "status",
    "progress",
    "created",
    "started",
    "finished",
    "error",
    "lease_holder",
    "lease_expires",
)
COLUMNS = ", ".join(JOB_COLUMNS)
UNFINISHED = f"status IN ('{QUEUED}', '{RUNNING}')"


def job_row(row: tuple[Any, ...] | list[Any]) -> Job:
    """A Job from its columns in JOB_COLUMNS order."""
    (id_, kind, owner, resource, params, status, progress, created, started, finished, error, holder, expires) = row
    return Job(
        id=int(id_),
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
    running one, else the first queued) as a JSON array in JOB_COLUMNS order, or NULL."""
    return (
        f"(SELECT json_build_array({COLUMNS}) FROM jobs WHERE resource = {resource} AND kind = '{kind}'"
        f" AND {UNFINISHED} ORDER BY id LIMIT 1)"
    )


def last_error(resource: str, kind: str) -> str:
    """SQL for one column: why the last finished job of `kind` on `resource` failed (NULL if it
    did not), until a job of that kind is added after it finished (see sqlite/jobs.py)."""
    return (
        f"(SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM jobs n WHERE n.resource = f.resource"
        f" AND n.kind = f.kind AND n.created > f.finished) THEN f.error END FROM jobs f"
        f" WHERE f.resource = {resource} AND f.kind = '{kind}' AND f.finished IS NOT NULL"
        f" ORDER BY f.id DESC LIMIT 1)"
    )


async def lock_queue(conn: Conn, resource: str) -> None:
    await lock(conn, "jobs", resource)


class JobRows(PostgresEngine):
    """Jobs and their leases."""

    async def add_job(self, job: Job) -> Job:
        async def add(conn: Conn) -> Job:
            await lock_queue(conn, job.resource)
            # A drive's row too: an activation checks for pending jobs under the drive's row lock.
            await conn.execute("SELECT 1 FROM drives WHERE id = %s FOR NO KEY UPDATE", (job.resource,))
            row = await (
                await conn.execute(
                    "INSERT INTO jobs (kind, owner, resource, params, status, created)"
                    " VALUES (%s, %s, %s, %s::jsonb, %s, %s) RETURNING id",
                    (job.kind, job.owner, job.resource, params_json(job.params), QUEUED, job.created),
                )
            ).fetchone()
            assert row is not None
            return Job(int(row[0]), job.kind, job.owner, job.resource, job.params, QUEUED, created=job.created)

        return await self._write(add)

    async def next_job(self, resource: str) -> Job | None:
        row = await self._one(
            f"SELECT {COLUMNS} FROM jobs WHERE resource = %s AND {UNFINISHED} ORDER BY id LIMIT 1", (resource,)
        )
        return job_row(row) if row else None

    async def claim_job(self, job: int, holder: str, now: int, expires: int) -> Job | None:
        async def claim(conn: Conn) -> Job | None:
            # The job's row locked: a node claiming it at the same time waits here, then finds it
            # running. (Not SKIP LOCKED: the runner would then read the job as still queued and
            # ask again, spinning until the other claim commits; the wait is one short commit.)
            found = await (
                await conn.execute("SELECT resource FROM jobs WHERE id = %s AND status = %s FOR UPDATE", (job, QUEUED))
            ).fetchone()
            if found is None:
                return None
            await lock_queue(conn, found[0])
            # Only the resource's first unfinished job, and only while it is queued (read again
            # under the lock: another node may have claimed it meanwhile).
            row = await (
                await conn.execute(
                    "UPDATE jobs SET status = %s, started = %s, lease_holder = %s, lease_expires = %s"
                    " WHERE id = %s AND status = %s AND id = (SELECT min(o.id) FROM jobs o"
                    f" WHERE o.resource = jobs.resource AND o.{UNFINISHED}) RETURNING {COLUMNS}",
                    (RUNNING, now, holder, expires, job, QUEUED),
                )
            ).fetchone()
            return job_row(row) if row else None

        return await self._write(claim)

    async def renew_jobs(self, holder: str, jobs: list[int], expires: int) -> list[int]:
        async def renew(conn: Conn) -> list[int]:
            rows = await (
                await conn.execute(
                    "UPDATE jobs SET lease_expires = %s WHERE id = ANY(%s) AND status = %s AND lease_holder = %s"
                    " RETURNING id",
                    (expires, list(jobs), RUNNING, holder),
                )
            ).fetchall()
            held = {int(row[0]) for row in rows}
            return [job for job in jobs if job in held]

        return await self._write(renew)

    async def job_progress(self, job: int, holder: str, progress: int) -> None:
        await self._execute(
            "UPDATE jobs SET progress = %s WHERE id = %s AND status = %s AND lease_holder = %s",
            (progress, job, RUNNING, holder),
        )

    async def finish_job(self, job: int, holder: str | None, status: str, error: str | None, finished: int) -> bool:
        async def finish(conn: Conn) -> bool:
            row = await (
                await conn.execute(
                    "UPDATE jobs SET status = %s, error = %s, finished = %s,"
                    " progress = CASE WHEN %s = %s THEN 100 ELSE progress END, lease_holder = NULL,"
                    " lease_expires = NULL WHERE id = %s AND status = %s AND lease_holder IS NOT DISTINCT FROM %s"
                    " RETURNING resource, kind",
                    (status, error, finished, status, DONE, job, RUNNING, holder),
                )
            ).fetchone()
            if row is None:
                return False
            if row[1] in KEPT:  # history (ECS actions): every one is kept
                return True
            # Only the last finished job of a kind says anything about its resource: older ones go.
            await conn.execute(
                "DELETE FROM jobs WHERE resource = %s AND kind = %s AND id < %s AND finished IS NOT NULL",
                (row[0], row[1], job),
            )
            return True

        return await self._write(finish)

    async def requeue_job(self, job: int, holder: str | None) -> bool:
        updated = await self._execute(
            "UPDATE jobs SET status = %s, progress = 0, started = NULL, lease_holder = NULL, lease_expires = NULL"
            " WHERE id = %s AND status = %s AND lease_holder IS NOT DISTINCT FROM %s",
            (QUEUED, job, RUNNING, holder),
        )
        return updated == 1

    async def jobs_of(self, owner: str, resource: str) -> list[Job]:
        rows = await self._all(
            f"SELECT {COLUMNS} FROM jobs WHERE resource = %s AND owner = %s ORDER BY id", (resource, owner)
        )
        return [job_row(row) for row in rows]

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._all(f"SELECT {COLUMNS} FROM jobs WHERE {UNFINISHED} ORDER BY id")
        return [job_row(row) for row in rows]
