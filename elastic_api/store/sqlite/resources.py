"""Resources (static IPs and VLANs), and the addresses active servers' NICs lease."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from elastic_api.errors import BusyError, FullError, MissingError
from elastic_api.model.resource import IP, VLAN, Lease, PoolFull, Resource, first_free, lowest_free_vlan_id
from elastic_api.model.server_record import ACTIVE
from elastic_api.store.sqlite.engine import SqliteEngine, after_marker


class ResourceRows(SqliteEngine):
    """Resources (static IPs and VLANs), and the addresses active servers' NICs lease."""

    _RESOURCE_COLUMNS = "id, type, owner, name, keys, created, vlan_id"
    # Where a server's configuration (store.server_rows) names a resource of each type: an IP as
    # a NIC's dhcp address or the VNC address, a VLAN as a NIC's.
    _REFERENCES = {
        "ip": "(json_extract(s.config, '$.vnc') = :resource OR EXISTS (SELECT 1 FROM json_each(s.config, '$.nics') n"
        " WHERE json_extract(n.value, '$.dhcp') = :resource))",
        "vlan": "EXISTS (SELECT 1 FROM json_each(s.config, '$.nics') n"
        " WHERE json_extract(n.value, '$.vlan') = :resource)",
    }

    @staticmethod
    def _resource(row: tuple[Any, ...]) -> Resource:
        keys = json.loads(row[4])
        return Resource(
            resource=row[0],
            type=row[1],
            owner=row[2],
            name=row[3],
            tags=tuple(keys.get("tags", ())),
            user_keys=dict(keys.get("user", {})),
            created=row[5],
            vlan_id=row[6],
        )

    @staticmethod
    def _resource_keys(resource: Resource) -> str:
        return json.dumps({"tags": list(resource.tags), "user": resource.user_keys})

    def _insert_resource(self, db: sqlite3.Connection, resource: Resource) -> None:
        vlan_id = None
        if resource.type == VLAN:
            used = {row[0] for row in db.execute("SELECT vlan_id FROM resources WHERE owner = ?", (resource.owner,))}
            vlan_id = lowest_free_vlan_id(used)
            if vlan_id is None:
                raise FullError("every VLAN number (1-4094) is taken: destroy a VLAN first")
        db.execute(
            f"INSERT INTO resources ({self._RESOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                resource.resource,
                resource.type,
                resource.owner,
                resource.name,
                self._resource_keys(resource),
                resource.created,
                vlan_id,
            ),
        )

    def _used_addresses(self, db: sqlite3.Connection) -> set[str]:
        """Addresses that are someone's IP resource or held by a NIC."""
        return {
            row[0] for row in db.execute("SELECT id FROM resources WHERE type = 'ip' UNION SELECT ip FROM ip_leases")
        }

    async def insert_resource(self, resource: Resource) -> None:
        await self._write(lambda db: self._insert_resource(db, resource))

    async def insert_ip_from_pool(self, resource: Resource, first: str, last: str) -> Resource | None:
        """The IP resource with the lowest free address of first-last as its ID, or None when none
        is free (the pick and the insert are one transaction)."""

        def insert(db: sqlite3.Connection) -> Resource | None:
            address = first_free(first, last, self._used_addresses(db))
            if address is None:
                return None
            chosen = dataclasses.replace(resource, resource=address, type=IP)
            self._insert_resource(db, chosen)
            return chosen

        return await self._write(insert)

    def _get_resource(self, user: str, resource: str, type_: str | None = None) -> Resource | None:
        row = self.db.execute(
            f"SELECT {self._RESOURCE_COLUMNS} FROM resources WHERE id = ? AND owner = ? AND type = coalesce(?, type)",
            (resource, user, type_),
        ).fetchone()
        return self._resource(row) if row else None

    async def get_resource(self, user: str, type_: str, resource: str) -> Resource | None:
        return await self._run(self._get_resource, user, resource, type_)

    async def list_resources(
        self, user: str, type_: str | None, limit: int | None, marker: str | None
    ) -> list[Resource]:
        def query() -> list[Resource]:
            params: dict[str, Any] = {"user": user, "type": type_, "limit": -1 if limit is None else limit}
            found = self._get_resource(user, marker, type_) if marker else None
            after = after_marker(
                marker, (found.created, found.resource) if found else None, params, "AND (created, id)"
            )
            rows = self.db.execute(
                f"SELECT {self._RESOURCE_COLUMNS} FROM resources WHERE owner = :user"
                f" AND type = coalesce(:type, type) {after} ORDER BY created, id LIMIT :limit",
                params,
            ).fetchall()
            return [self._resource(row) for row in rows]

        return await self._run(query)

    async def update_resource(self, user: str, resource: Resource) -> bool:
        return (
            await self._execute(
                "UPDATE resources SET name = ?, keys = ? WHERE id = ? AND owner = ? AND type = ?",
                (resource.name, self._resource_keys(resource), resource.resource, user, resource.type),
            )
            == 1
        )

    async def delete_resource(self, user: str, type_: str, resource: str) -> bool:
        """Remove the user's resource; False when there is none. BusyError, and nothing changes,
        while one of the user's servers (active or stopped) names it or a NIC holds it."""

        def delete(db: sqlite3.Connection) -> bool:
            if self._get_resource(user, resource, type_) is None:
                return False
            users = [
                row[0]
                for row in db.execute(
                    f"SELECT s.id FROM servers s WHERE s.owner = :user AND {self._REFERENCES[type_]} ORDER BY s.id",
                    {"user": user, "resource": resource},
                )
            ]
            users += [row[0] for row in db.execute("SELECT server FROM ip_leases WHERE resource = ?", (resource,))]
            if users:
                raise BusyError(f"{type_} {resource} is used by server {' '.join(dict.fromkeys(users))}")
            return (
                db.execute(
                    "DELETE FROM resources WHERE id = ? AND owner = ? AND type = ?", (resource, user, type_)
                ).rowcount
                == 1
            )

        return await self._write(delete, freeing=True)

    # -- the addresses active servers' NICs lease -------------------------------------------------
    @staticmethod
    def _lease(row: tuple[Any, ...]) -> Lease:
        return Lease(server=row[0], nic=row[1], mac=row[2], ip=row[3], auto=row[4] is None)

    async def lease_ips(
        self,
        user: str,
        server: str,
        static: list[tuple[int, str, str]],
        auto: list[tuple[int, str]],
        first: str,
        last: str,
    ) -> list[Lease]:
        """Give the user's server its addresses in one transaction, or none of them: each
        (nic, mac, ip) of `static` its IP resource, each (nic, mac) of `auto` the lowest free
        address of first-last. MissingError for an IP that is not the user's, BusyError for one
        another server holds, FullError when the pool has no address left."""

        def lease(db: sqlite3.Connection) -> list[Lease]:
            if db.execute("SELECT 1 FROM servers WHERE id = ? AND owner = ?", (server, user)).fetchone() is None:
                raise MissingError(f"no such server: {server}")
            # Whatever an earlier run of the server held and did not give back is given back now.
            db.execute("DELETE FROM ip_leases WHERE server = ?", (server,))
            leases = []
            for nic, mac, ip in static:
                if self._get_resource(user, ip, IP) is None:
                    raise MissingError(f"no such ip: {ip}")
                holder = db.execute("SELECT server FROM ip_leases WHERE ip = ?", (ip,)).fetchone()
                if holder is not None:
                    raise BusyError(f"ip {ip} is held by server {holder[0]}")
                db.execute(
                    "INSERT INTO ip_leases (ip, server, nic, mac, resource) VALUES (?, ?, ?, ?, ?)",
                    (ip, server, nic, mac, ip),
                )
                leases.append(Lease(server, nic, mac, ip, auto=False))
            used = self._used_addresses(db)
            for nic, mac in auto:
                free = first_free(first, last, used)
                if free is None:
                    raise PoolFull(nic, server)
                used.add(free)
                db.execute("INSERT INTO ip_leases (ip, server, nic, mac) VALUES (?, ?, ?, ?)", (free, server, nic, mac))
                leases.append(Lease(server, nic, mac, free, auto=True))
            return leases

        try:
            return await self._write(lease)
        except sqlite3.IntegrityError:
            # Only reachable when another writer got between the look and the insert.
            raise BusyError(f"an address server {server} asked for is held by another server") from None

    async def server_leases(self, user: str, server: str) -> list[Lease]:
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l JOIN servers s ON s.id = l.server"
                " WHERE l.server = ? AND s.owner = ? ORDER BY l.nic",
                (server, user),
            ).fetchall()
        )
        return [self._lease(row) for row in rows]

    async def release_leases(self, user: str, server: str) -> None:
        await self._write(
            lambda db: db.execute(
                "DELETE FROM ip_leases WHERE server = (SELECT id FROM servers WHERE id = ? AND owner = ?)",
                (server, user),
            )
        )

    async def active_leases(self) -> list[tuple[str, Lease]]:
        """Maintenance: (host, lease) for every address an active server holds, whoever owns it."""
        rows = await self._run(
            lambda: self.db.execute(
                "SELECT s.host, l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l"
                " JOIN servers s ON s.id = l.server WHERE s.status = ? ORDER BY l.ip",
                (ACTIVE,),
            ).fetchall()
        )
        return [(row[0], self._lease(row[1:])) for row in rows]

    async def drop_stale_leases(self) -> int:
        """Maintenance: forget the addresses of servers that are not active; how many went."""
        return await self._write(
            lambda db: (
                db.execute(
                    "DELETE FROM ip_leases WHERE server NOT IN (SELECT id FROM servers WHERE status = ?)", (ACTIVE,)
                ).rowcount
            )
        )

    async def all_vlan_ids(self) -> set[str]:
        """Maintenance: every VLAN's UUID regardless of owner (start-up removes other VLAN networks)."""
        return await self._run(
            lambda: {row[0] for row in self.db.execute("SELECT id FROM resources WHERE type = 'vlan'")}
        )
