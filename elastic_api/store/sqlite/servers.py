"""Servers, and the drives active servers claim."""

from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.errors import BusyError
from elastic_api.model.device import Device
from elastic_api.model.server_record import ACTIVE, STOPPED, Claim, ServerRecord
from elastic_api.store import server_rows
from elastic_api.store.sqlite.engine import SqliteEngine, after_marker


def _device_column(device: Device) -> str:
    """A claim's device in its column: what keeps one claim per device of a server."""
    return f"{device.bus}:{device.controller}:{device.unit}"


class ServerRows(SqliteEngine):
    """Servers, and the drives an active server claims."""

    _SERVER_COLUMNS = "id, owner, config, created, status, host, started"

    @staticmethod
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

    async def insert_server(self, record: ServerRecord) -> None:
        await self._execute(
            "INSERT INTO servers (id, owner, config, cpu, mem, created, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.server,
                record.owner,
                server_rows.dump(record.config),
                record.config.cpu,
                record.config.mem,
                record.created,
                record.status,
            ),
        )

    def _get_server(self, user: str, server: str) -> ServerRecord | None:
        row = self.db.execute(
            f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE id = ? AND owner = ?", (server, user)
        ).fetchone()
        return self._server(row) if row else None

    async def get_server(self, user: str, server: str) -> ServerRecord | None:
        return await self._run(self._get_server, user, server)

    async def list_servers(self, user: str, limit: int | None, marker: str | None) -> list[ServerRecord]:
        def query() -> list[ServerRecord]:
            params: dict[str, Any] = {"user": user, "limit": -1 if limit is None else limit}
            found = self._get_server(user, marker) if marker else None
            after = after_marker(marker, (found.created, found.server) if found else None, params, "AND (created, id)")
            rows = self.db.execute(
                f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE owner = :user {after}"
                " ORDER BY created, id LIMIT :limit",
                params,
            ).fetchall()
            return [self._server(row) for row in rows]

        return await self._run(query)

    async def update_server_config(self, user: str, record: ServerRecord) -> bool:
        config = record.config
        updated = await self._execute(
            "UPDATE servers SET config = ?, cpu = ?, mem = ? WHERE id = ? AND owner = ?",
            (server_rows.dump(config), config.cpu, config.mem, record.server, user),
        )
        return updated == 1

    async def delete_server(self, user: str, server: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM servers WHERE id = ? AND owner = ?", (server, user)).rowcount == 1

        return await self._write(delete, freeing=True)

    async def activate_server(self, user: str, server: str, host: str, started: int, claims: list[Claim]) -> None:
        """Claim the drives and mark the server active, or BusyError and nothing changes: a drive
        being imaged, or an exclusive drive another server holds (or holding one exclusively that
        another server shares), cannot be claimed."""

        def activate(db: sqlite3.Connection) -> None:
            for claim in claims:
                row = db.execute(
                    "SELECT claim_type, EXISTS (SELECT 1 FROM jobs WHERE resource = drives.id"
                    " AND status IN ('queued', 'running')) FROM drives WHERE id = ?",
                    (claim.drive,),
                ).fetchone()
                if row is None:
                    raise BusyError(f"drive {claim.drive} is gone")
                if row[1]:  # a job pending on the drive: it changes the bytes the guest would see
                    raise BusyError(f"drive {claim.drive} is being imaged")
                others = [
                    r[0]
                    for r in db.execute(
                        "SELECT DISTINCT server FROM server_claims WHERE drive = ? AND server != ?",
                        (claim.drive, server),
                    )
                ]
                if others and row[0] == "exclusive":
                    raise BusyError(f"drive {claim.drive} is claimed exclusively by {' '.join(others)}")
            updated = db.execute(
                "UPDATE servers SET status = ?, host = ?, started = ? WHERE id = ? AND owner = ? AND status = ?",
                (ACTIVE, host, started, server, user, STOPPED),
            ).rowcount
            if updated != 1:
                raise BusyError(f"server {server} is already active")
            db.executemany(
                "INSERT INTO server_claims (server, device, drive) VALUES (?, ?, ?)",
                [(server, _device_column(c.device), c.drive) for c in claims],
            )

        await self._write(activate)

    async def deactivate_server(self, user: str, server: str) -> bool:
        """Release the server's claims and leases and mark it stopped; False when it was not
        active. Another user's server is left alone."""

        def deactivate(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM servers WHERE id = ? AND owner = ?", (server, user)).fetchone() is None:
                return False
            db.execute("DELETE FROM server_claims WHERE server = ?", (server,))
            db.execute("DELETE FROM ip_leases WHERE server = ?", (server,))
            return (
                db.execute(
                    "UPDATE servers SET status = ?, host = NULL, started = NULL WHERE id = ? AND owner = ?"
                    " AND status = ?",
                    (STOPPED, server, user, ACTIVE),
                ).rowcount
                == 1
            )

        return await self._write(deactivate)

    async def active_servers(self) -> list[ServerRecord]:
        """Maintenance: every active server, whoever owns it (start-up reconciliation, events)."""
        rows = await self._run(
            lambda: self.db.execute(
                f"SELECT {self._SERVER_COLUMNS} FROM servers WHERE status = ?", (ACTIVE,)
            ).fetchall()
        )
        return [self._server(row) for row in rows]

    async def all_servers(self) -> list[ServerRecord]:
        """Maintenance: every server, whoever owns it, active or not (what this installation owns
        on a libvirtd it may share: adopting domains from before installation IDs, knowing its
        NICs' MACs among the public network's reservations)."""
        rows = await self._run(
            lambda: self.db.execute(f"SELECT {self._SERVER_COLUMNS} FROM servers ORDER BY created, id").fetchall()
        )
        return [self._server(row) for row in rows]

    async def server_owner(self, server: str) -> str | None:
        """Maintenance: who owns a server a hypervisor event names."""
        row = await self._run(lambda: self.db.execute("SELECT owner FROM servers WHERE id = ?", (server,)).fetchone())
        return str(row[0]) if row else None
