"""ECS servers' rows, their isolation pairs, and their actions (the jobs of the ECS kinds)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from elastic_api.model.cloudinit import dump_setup, load_setup
from elastic_api.model.ecs import EcsServer, server_name
from elastic_api.model.job import ACTIONS, Job, params_json
from elastic_api.store.postgres.engine import Conn, PostgresEngine
from elastic_api.store.postgres.jobs import JOB_COLUMNS, job_row

_COLUMNS = (
    "id, owner, plan, cores, ram_mb, disk_gb, cpu, image, so, so_label, location, notes, group_id, ssh_key,"
    " status, stage, progress, drive, server, ipv4, created, cloudinit, vlans"
)
# What update_ecs_server may change.
_CHANGEABLE = frozenset(
    {
        "notes",
        "group_id",
        "status",
        "stage",
        "progress",
        "drive",
        "server",
        "ipv4",
        "held_drive",
        "held_server",
        "held_run",
    }
)
_JOBS = ", ".join(f"j.{c}" for c in JOB_COLUMNS)


def _row(row: tuple[Any, ...]) -> EcsServer:
    setup = row[-2] if isinstance(row[-2], str) else json.dumps(row[-2])  # JSONB comes decoded
    return replace(EcsServer(int(row[0]), *row[1:-2]), setup=load_setup(setup), vlans=tuple(json.loads(row[-1])))


class EcsServerRows(PostgresEngine):
    async def insert_ecs_server(self, server: EcsServer, isolate_from: list[int]) -> EcsServer:
        """Add the server (its id from the sequence: the given one is ignored) with the quota its
        create was admitted with held until its action makes the parts, and its isolation pairs."""
        values = (
            server.owner,
            server.plan,
            server.cores,
            server.ram_mb,
            server.disk_gb,
            server.cpu,
            server.image,
            server.so,
            server.so_label,
            server.location,
            server.notes,
            server.group,
            server.ssh_key,
            server.status,
            server.stage,
            server.progress,
            server.drive,
            server.server,
            server.ipv4,
            server.created,
            dump_setup(server.setup),
            json.dumps(list(server.vlans)),
        )

        async def insert(conn: Conn) -> EcsServer:
            row = await (
                await conn.execute(
                    f"INSERT INTO ecs_servers ({_COLUMNS.split(', ', 1)[1]}, held_drive, held_server, held_run)"
                    f" VALUES ({', '.join(['%s'] * (len(values) - 1))}, %s::jsonb, 1, 1, 1) RETURNING {_COLUMNS}",
                    values,
                )
            ).fetchone()
            assert row is not None
            if isolate_from:
                await conn.execute(
                    "INSERT INTO ecs_isolations (a, b) SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                    (row[0], list(isolate_from)),
                )
            return _row(row)

        return await self._write(insert)

    async def get_ecs_server(self, owner: str, id_: int) -> EcsServer | None:
        row = await self._one(f"SELECT {_COLUMNS} FROM ecs_servers WHERE id = %s AND owner = %s", (id_, owner))
        return _row(row) if row else None

    async def ecs_server_by_id(self, id_: int) -> EcsServer | None:
        """Maintenance (actions): the row whoever owns it."""
        row = await self._one(f"SELECT {_COLUMNS} FROM ecs_servers WHERE id = %s", (id_,))
        return _row(row) if row else None

    async def list_ecs_servers(self, owner: str | None) -> list[EcsServer]:
        """The owner's servers in creation order (every owner's with None: maintenance)."""
        rows = await self._all(
            f"SELECT {_COLUMNS} FROM ecs_servers WHERE owner = coalesce(%s, owner) ORDER BY id", (owner,)
        )
        return [_row(row) for row in rows]

    async def update_ecs_server(self, id_: int, **changes: Any) -> bool:
        unknown = set(changes) - _CHANGEABLE
        assert not unknown, unknown
        if not changes:
            return await self._one("SELECT 1 FROM ecs_servers WHERE id = %s", (id_,)) is not None
        assignments = ", ".join(f"{key} = %s" for key in changes)
        return await self._execute(f"UPDATE ecs_servers SET {assignments} WHERE id = %s", (*changes.values(), id_)) == 1

    async def delete_ecs_server(self, id_: int) -> bool:
        return await self._execute("DELETE FROM ecs_servers WHERE id = %s", (id_,)) == 1

    async def ecs_manager_of(self, uuid: str) -> str | None:
        """The ECS name of the server whose engine server or boot drive `uuid` is, if any."""
        row = await self._one(
            "SELECT id FROM ecs_servers WHERE server = %s OR drive = %s ORDER BY id LIMIT 1", (uuid, uuid)
        )
        return server_name(int(row[0])) if row else None

    async def ecs_partners(self, id_: int) -> list[EcsServer]:
        """The servers isolated from this one, in either direction."""
        rows = await self._all(
            f"SELECT {_COLUMNS} FROM ecs_servers WHERE id IN (SELECT b FROM ecs_isolations WHERE a = %(id)s"
            " UNION SELECT a FROM ecs_isolations WHERE b = %(id)s) ORDER BY id",
            {"id": id_},
        )
        return [_row(row) for row in rows]

    async def ecs_actions(self, owner: str, resources: list[str] | None) -> list[Job]:
        """The owner's actions, newest first; with `resources`, those on the servers named."""
        if resources is not None and not resources:
            return []
        rows = await self._all(
            f"SELECT {_JOBS} FROM jobs j WHERE j.owner = %s AND j.kind = ANY(%s)"
            " AND (%s::text[] IS NULL OR j.resource = ANY(%s::text[])) ORDER BY j.id DESC",
            (owner, list(ACTIONS), resources, resources),
        )
        return [job_row(row) for row in rows]

    async def ecs_action(self, owner: str, id_: int) -> Job | None:
        row = await self._one(
            f"SELECT {_JOBS} FROM jobs j WHERE j.id = %s AND j.owner = %s AND j.kind = ANY(%s)",
            (id_, owner, list(ACTIONS)),
        )
        return job_row(row) if row else None

    async def add_finished_job(self, job: Job) -> Job:
        """A job that is done the moment it is asked for (a console action): stored finished."""

        async def add(conn: Conn) -> Job:
            row = await (
                await conn.execute(
                    "INSERT INTO jobs (kind, owner, resource, params, status, progress, created, started, finished)"
                    " VALUES (%s, %s, %s, %s::jsonb, %s, 100, %s, %s, %s) RETURNING id",
                    (
                        job.kind,
                        job.owner,
                        job.resource,
                        params_json(job.params),
                        job.status,
                        job.created,
                        job.created,
                        job.created,
                    ),
                )
            ).fetchone()
            assert row is not None
            return Job(
                int(row[0]),
                job.kind,
                job.owner,
                job.resource,
                job.params,
                job.status,
                100,
                job.created,
                job.created,
                job.created,
            )

        return await self._write(add)
