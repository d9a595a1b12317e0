"""Servers, and the drives active servers claim."""

from __future__ import annotations

from typing import Any

from elastic_api.errors import BusyError
from elastic_api.model.device import Device
from elastic_api.model.server_record import ACTIVE, STOPPED, Claim, ServerRecord
from elastic_api.store import server_rows
from elastic_api.store.postgres.engine import Conn, PostgresEngine, after_marker

_COLUMNS = "id, owner, config::text, created, status, host, started"


def _device_column(device: Device) -> str:
    """A claim's device in its column: what keeps one claim per device of a server."""
    return f"{device.bus}:{device.controller}:{device.unit}"


def _server(row: tuple[Any, ...]) -> ServerRecord:
    return ServerRecord(
        server=row[0],
        owner=row[1],
        config=server_rows.load(row[2]),
        created=row[3],
        status=row[4],
        host=row[5],
        started=row[6],
    )


class ServerRows(PostgresEngine):
    """Servers, and the drives an active server claims."""

    async def insert_server(self, record: ServerRecord) -> None:
        config = record.config
        await self._execute(
            "INSERT INTO servers (id, owner, config, cpu, mem, created, status)"
            " VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s)",
            (
                record.server,
                record.owner,
                server_rows.dump(config),
                config.cpu,
                config.mem,
                record.created,
                record.status,
            ),
        )

    async def get_server(self, user: str, server: str) -> ServerRecord | None:
        row = await self._one(f"SELECT {_COLUMNS} FROM servers WHERE id = %s AND owner = %s", (server, user))
        return _server(row) if row else None

    async def list_servers(self, user: str, limit: int | None, marker: str | None) -> list[ServerRecord]:
        async def query(conn: Conn) -> list[ServerRecord]:
            params: dict[str, Any] = {"user": user, "limit": limit}
            found = None
            if marker is not None:
                found = await (
                    await conn.execute("SELECT created, id FROM servers WHERE id = %s AND owner = %s", (marker, user))
                ).fetchone()
            after = after_marker(marker, (found[0], found[1]) if found else None, params, "AND (created, id)")
            rows = await (
                await conn.execute(
                    f"SELECT {_COLUMNS} FROM servers WHERE owner = %(user)s {after}"
                    " ORDER BY created, id LIMIT %(limit)s",
                    params,
                )
            ).fetchall()
            return [_server(row) for row in rows]

        return await self._read(query)

    async def update_server_config(self, user: str, record: ServerRecord) -> bool:
        config = record.config
        updated = await self._execute(
            "UPDATE servers SET config = %s::jsonb, cpu = %s, mem = %s WHERE id = %s AND owner = %s",
            (server_rows.dump(config), config.cpu, config.mem, record.server, user),
        )
        return updated == 1

    async def delete_server(self, user: str, server: str) -> bool:
        # Claims, leases and samples go by their foreign keys' ON DELETE CASCADE.
        return await self._execute("DELETE FROM servers WHERE id = %s AND owner = %s", (server, user)) == 1

    async def activate_server(self, user: str, server: str, host: str, started: int, claims: list[Claim]) -> None:
        """Claim the drives and mark the server active, or BusyError and nothing changes. The
        claimed drives' rows are locked first, in ID order (no two activations deadlock), so two
        activations that want one drive run their checks one after the other, across nodes too;
        the server's own row is locked by its UPDATE, so it is activated once."""

        async def activate(conn: Conn) -> None:
            drives = sorted({claim.drive for claim in claims})
            rows = await (
                await conn.execute(
                    "SELECT id, claim_type, EXISTS (SELECT 1 FROM jobs WHERE resource = drives.id"
                    " AND status IN ('queued', 'running')) FROM drives WHERE id = ANY(%s)"
                    " ORDER BY id FOR NO KEY UPDATE",
                    (drives,),
                )
            ).fetchall()
            found = {row[0]: (row[1], row[2]) for row in rows}
            for claim in claims:
                if claim.drive not in found:
                    raise BusyError(f"drive {claim.drive} is gone")
                claim_type, imaging = found[claim.drive]
                if imaging:  # a job pending on the drive: it changes the bytes the guest would see
                    raise BusyError(f"drive {claim.drive} is being imaged")
                others = [
                    r[0]
                    for r in await (
                        await conn.execute(
                            "SELECT DISTINCT server FROM server_claims WHERE drive = %s AND server != %s"
                            " ORDER BY server",
                            (claim.drive, server),
                        )
                    ).fetchall()
                ]
                if others and claim_type == "exclusive":
                    raise BusyError(f"drive {claim.drive} is claimed exclusively by {' '.join(others)}")
            updated = (
                await conn.execute(
                    "UPDATE servers SET status = %s, host = %s, started = %s"
                    " WHERE id = %s AND owner = %s AND status = %s",
                    (ACTIVE, host, started, server, user, STOPPED),
                )
            ).rowcount
            if updated != 1:
                raise BusyError(f"server {server} is already active")
            if claims:
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "INSERT INTO server_claims (server, device, drive) VALUES (%s, %s, %s)",
                        [(server, _device_column(c.device), c.drive) for c in claims],
                    )

        await self._write(activate)

    async def deactivate_server(self, user: str, server: str) -> bool:
        async def deactivate(conn: Conn) -> bool:
            if (
                await (
                    await conn.execute(
                        "SELECT 1 FROM servers WHERE id = %s AND owner = %s FOR NO KEY UPDATE", (server, user)
                    )
                ).fetchone()
                is None
            ):
                return False
            await conn.execute("DELETE FROM server_claims WHERE server = %s", (server,))
            await conn.execute("DELETE FROM ip_leases WHERE server = %s", (server,))
            return (
                await conn.execute(
                    "UPDATE servers SET status = %s, host = NULL, started = NULL WHERE id = %s AND owner = %s"
                    " AND status = %s",
                    (STOPPED, server, user, ACTIVE),
                )
            ).rowcount == 1

        return await self._write(deactivate)

    async def active_servers(self) -> list[ServerRecord]:
        return [_server(row) for row in await self._all(f"SELECT {_COLUMNS} FROM servers WHERE status = %s", (ACTIVE,))]

    async def all_servers(self) -> list[ServerRecord]:
        return [_server(row) for row in await self._all(f"SELECT {_COLUMNS} FROM servers ORDER BY created, id")]

    async def server_owner(self, server: str) -> str | None:
        row = await self._one("SELECT owner FROM servers WHERE id = %s", (server,))
        return str(row[0]) if row else None
