"""ECS servers' rows, their isolation pairs, and their actions (the jobs of the ECS kinds)."""

from __future__ import annotations

import sqlite3
import json
from dataclasses import replace
from typing import Any

from elastic_api.model.cloudinit import dump_setup, load_setup
from elastic_api.model.ecs import EcsServer, server_name
from elastic_api.model.job import ACTIONS, Job, params_json
from elastic_api.store.sqlite.engine import SqliteEngine
from elastic_api.store.sqlite.jobs import JOB_COLUMNS, job_row

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
_KINDS = ", ".join(f"'{kind}'" for kind in ACTIONS)
_JOBS = ", ".join(f"j.{c}" for c in JOB_COLUMNS)


def _row(row: tuple[Any, ...]) -> EcsServer:
    return replace(EcsServer(*row[:-2]), setup=load_setup(row[-2]), vlans=tuple(json.loads(row[-1])))


class EcsServerRows(SqliteEngine):
    async def insert_ecs_server(self, server: EcsServer, isolate_from: list[int]) -> EcsServer:
        """Add the server (its id from the counter: the given one is ignored) with the quota its
        create was admitted with held until its action makes the parts, and its isolation pairs."""

        def insert(db: sqlite3.Connection) -> EcsServer:
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
            cursor = db.execute(
                f"INSERT INTO ecs_servers ({_COLUMNS.split(', ', 1)[1]}, held_drive, held_server, held_run)"
                f" VALUES ({', '.join('?' * len(values))}, 1, 1, 1)",
                values,
            )
            id_ = int(cursor.lastrowid or 0)
            for other in isolate_from:
                db.execute("INSERT OR IGNORE INTO ecs_isolations (a, b) VALUES (?, ?)", (id_, other))
            row = db.execute(f"SELECT {_COLUMNS} FROM ecs_servers WHERE id = ?", (id_,)).fetchone()
            return _row(row)

        return await self._write(insert)

    async def get_ecs_server(self, owner: str, id_: int) -> EcsServer | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM ecs_servers WHERE id = ? AND owner = ?", (id_, owner)
            ).fetchone()
        )
        return _row(row) if row else None

    async def ecs_server_by_id(self, id_: int) -> EcsServer | None:
        """Maintenance (actions): the row whoever owns it."""
        row = await self._run(
            lambda: self.db.execute(f"SELECT {_COLUMNS} FROM ecs_servers WHERE id = ?", (id_,)).fetchone()
        )
        return _row(row) if row else None

    async def list_ecs_servers(self, owner: str | None) -> list[EcsServer]:
        """The owner's servers in creation order (every owner's with None: maintenance)."""
        if owner is None:
            rows = await self._run(
                lambda: self.db.execute(f"SELECT {_COLUMNS} FROM ecs_servers ORDER BY id").fetchall()
            )
        else:
            rows = await self._run(
                lambda: self.db.execute(
                    f"SELECT {_COLUMNS} FROM ecs_servers WHERE owner = ? ORDER BY id", (owner,)
                ).fetchall()
            )
        return [_row(row) for row in rows]

    async def update_ecs_server(self, id_: int, **changes: Any) -> bool:
        unknown = set(changes) - _CHANGEABLE
        assert not unknown, unknown
        assignments = ", ".join(f"{key} = ?" for key in changes)
        return await self._execute(f"UPDATE ecs_servers SET {assignments} WHERE id = ?", (*changes.values(), id_)) == 1

    async def delete_ecs_server(self, id_: int) -> bool:
        return await self._execute("DELETE FROM ecs_servers WHERE id = ?", (id_,)) == 1

    async def ecs_manager_of(self, uuid: str) -> str | None:
        """The ECS name of the server whose engine server or boot drive `uuid` is, if any."""
        row = await self._run(
            lambda: self.db.execute(
                "SELECT id FROM ecs_servers WHERE server = ? OR drive = ? LIMIT 1", (uuid, uuid)
            ).fetchone()
        )
        return server_name(row[0]) if row else None

    async def ecs_partners(self, id_: int) -> list[EcsServer]:
        """The servers isolated from this one, in either direction."""
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {_COLUMNS} FROM ecs_servers WHERE id IN (SELECT b FROM ecs_isolations WHERE a = ?"
                " UNION SELECT a FROM ecs_isolations WHERE b = ?) ORDER BY id",
                (id_, id_),
            ).fetchall()
        )
        return [_row(row) for row in rows]

    async def ecs_actions(self, owner: str, resources: list[str] | None) -> list[Job]:
        """The owner's actions, newest first; with `resources`, those on the servers named."""

        def query() -> list[Job]:
            sql = f"SELECT {_JOBS} FROM jobs j WHERE j.owner = ? AND j.kind IN ({_KINDS})"
            args: list[Any] = [owner]
            if resources is not None:
                if not resources:
                    return []
                sql += f" AND j.resource IN ({', '.join('?' * len(resources))})"
                args += resources
            return [job_row(row) for row in self.db.execute(sql + " ORDER BY j.id DESC", args).fetchall()]

        return await self._run(query)

    async def ecs_action(self, owner: str, id_: int) -> Job | None:
        row = await self._run(
            lambda: self.db.execute(
                f"SELECT {_JOBS} FROM jobs j WHERE j.id = ? AND j.owner = ? AND j.kind IN ({_KINDS})", (id_, owner)
            ).fetchone()
        )
        return job_row(row) if row else None

    async def add_finished_job(self, job: Job) -> Job:
        """A job that is done the moment it is asked for (a console action): stored finished."""

        def add(db: sqlite3.Connection) -> Job:
            cursor = db.execute(
                "INSERT INTO jobs (kind, owner, resource, params, status, progress, created, started, finished)"
                " VALUES (?, ?, ?, ?, ?, 100, ?, ?, ?)",
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
            return Job(
                int(cursor.lastrowid or 0),
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
