"""Resources (static IPs and VLANs), and the addresses active servers' NICs lease.

Every change to who holds an address (an IP resource made, a lease given) runs under one
advisory lock, the pool's: the lowest free address is read and taken with no other node
between, and the rule that an address is never both an IP resource and an automatic lease is
checked under it (SQLite's triggers ip_leases_auto_not_a_resource and resources_not_leased)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from psycopg import errors as pg_errors

from elastic_api.errors import BusyError, FullError, MissingError
from elastic_api.model.resource import IP, VLAN, Lease, PoolFull, Resource, first_free, lowest_free_vlan_id
from elastic_api.model.server_record import ACTIVE
from elastic_api.store.postgres.engine import Conn, PostgresEngine, after_marker, lock

_COLUMNS = "id, type, owner, name, keys, created, vlan_id"
# Where a server's configuration (store.server_rows, JSONB here) names a resource of each type: an
# IP as a NIC's dhcp address or the VNC address, a VLAN as a NIC's.
_REFERENCES = {
    "ip": "(s.config->>'vnc' = %(resource)s OR EXISTS (SELECT 1 FROM jsonb_array_elements(s.config->'nics') n"
    " WHERE n->>'dhcp' = %(resource)s))",
    "vlan": "EXISTS (SELECT 1 FROM jsonb_array_elements(s.config->'nics') n WHERE n->>'vlan' = %(resource)s)",
}


def _resource(row: tuple[Any, ...]) -> Resource:
    keys = row[4]
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


def _keys(resource: Resource) -> str:
    return json.dumps({"tags": list(resource.tags), "user": resource.user_keys})


def _lease(row: tuple[Any, ...]) -> Lease:
    return Lease(server=row[0], nic=row[1], mac=row[2], ip=row[3], auto=row[4] is None)


async def _lock_pool(conn: Conn) -> None:
    await lock(conn, "ip-pool")


async def _used_addresses(conn: Conn) -> set[str]:
    """Addresses that are someone's IP resource or held by a NIC."""
    rows = await (
        await conn.execute("SELECT id FROM resources WHERE type = 'ip' UNION SELECT ip FROM ip_leases")
    ).fetchall()
    return {row[0] for row in rows}


async def _insert_resource(conn: Conn, resource: Resource) -> None:
    vlan_id = None
    if resource.type == VLAN:
        await lock(conn, "vlan-ids", resource.owner)  # two VLANs made at once get two numbers
        rows = await (
            await conn.execute("SELECT vlan_id FROM resources WHERE owner = %s", (resource.owner,))
        ).fetchall()
        vlan_id = lowest_free_vlan_id({row[0] for row in rows})
        if vlan_id is None:
            raise FullError("every VLAN number (1-4094) is taken: destroy a VLAN first")
    await conn.execute(
        f"INSERT INTO resources ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)",
        (resource.resource, resource.type, resource.owner, resource.name, _keys(resource), resource.created, vlan_id),
    )


async def _get_resource(conn: Conn, user: str, resource: str, type_: str | None = None) -> Resource | None:
    row = await (
        await conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE id = %s AND owner = %s AND type = coalesce(%s, type)",
            (resource, user, type_),
        )
    ).fetchone()
    return _resource(row) if row else None


class ResourceRows(PostgresEngine):
    async def insert_resource(self, resource: Resource) -> None:
        async def insert(conn: Conn) -> None:
            await _lock_pool(conn)
            if await (await conn.execute("SELECT 1 FROM ip_leases WHERE ip = %s", (resource.resource,))).fetchone():
                # As SQLite's trigger: the engine's integrity error.
                raise pg_errors.IntegrityConstraintViolation("address is leased")
            await _insert_resource(conn, resource)

        await self._write(insert)

    async def insert_ip_from_pool(self, resource: Resource, first: str, last: str) -> Resource | None:
        async def insert(conn: Conn) -> Resource | None:
            await _lock_pool(conn)
            address = first_free(first, last, await _used_addresses(conn))
            if address is None:
                return None
            chosen = dataclasses.replace(resource, resource=address, type=IP)
            await _insert_resource(conn, chosen)
            return chosen

        return await self._write(insert)

    async def get_resource(self, user: str, type_: str, resource: str) -> Resource | None:
        return await self._single(lambda conn: _get_resource(conn, user, resource, type_))

    async def list_resources(
        self, user: str, type_: str | None, limit: int | None, marker: str | None
    ) -> list[Resource]:
        async def query(conn: Conn) -> list[Resource]:
            params: dict[str, Any] = {"user": user, "type": type_, "limit": limit}
            found = await _get_resource(conn, user, marker, type_) if marker else None
            after = after_marker(
                marker, (found.created, found.resource) if found else None, params, "AND (created, id)"
            )
            rows = await (
                await conn.execute(
                    f"SELECT {_COLUMNS} FROM resources WHERE owner = %(user)s"
                    f" AND type = coalesce(%(type)s, type) {after} ORDER BY created, id LIMIT %(limit)s",
                    params,
                )
            ).fetchall()
            return [_resource(row) for row in rows]

        return await self._read(query)

    async def update_resource(self, user: str, resource: Resource) -> bool:
        return (
            await self._execute(
                "UPDATE resources SET name = %s, keys = %s::jsonb WHERE id = %s AND owner = %s AND type = %s",
                (resource.name, _keys(resource), resource.resource, user, resource.type),
            )
            == 1
        )

    async def delete_resource(self, user: str, type_: str, resource: str) -> bool:
        async def delete(conn: Conn) -> bool:
            # The row locked first: a server configuration naming it, or a lease taking it, that
            # commits meanwhile is seen by the checks below (the lease's foreign key waits on it).
            row = await (
                await conn.execute(
                    "SELECT 1 FROM resources WHERE id = %s AND owner = %s AND type = %s FOR UPDATE",
                    (resource, user, type_),
                )
            ).fetchone()
            if row is None:
                return False
            users = [
                r[0]
                for r in await (
                    await conn.execute(
                        f"SELECT s.id FROM servers s WHERE s.owner = %(user)s AND {_REFERENCES[type_]} ORDER BY s.id",
                        {"user": user, "resource": resource},
                    )
                ).fetchall()
            ]
            users += [
                r[0]
                for r in await (
                    await conn.execute("SELECT server FROM ip_leases WHERE resource = %s", (resource,))
                ).fetchall()
            ]
            if users:
                raise BusyError(f"{type_} {resource} is used by server {' '.join(dict.fromkeys(users))}")
            return (
                await conn.execute(
                    "DELETE FROM resources WHERE id = %s AND owner = %s AND type = %s", (resource, user, type_)
                )
            ).rowcount == 1

        return await self._write(delete, freeing=True)

    async def all_vlan_ids(self) -> set[str]:
        return {row[0] for row in await self._all("SELECT id FROM resources WHERE type = 'vlan'")}

    # -- the addresses active servers' NICs lease -------------------------------------------------
    async def lease_ips(
        self,
        user: str,
        server: str,
        static: list[tuple[int, str, str]],
        auto: list[tuple[int, str]],
        first: str,
        last: str,
    ) -> list[Lease]:
        async def lease(conn: Conn) -> list[Lease]:
            if (
                await (
                    await conn.execute(
                        "SELECT 1 FROM servers WHERE id = %s AND owner = %s FOR NO KEY UPDATE", (server, user)
                    )
                ).fetchone()
                is None
            ):
                raise MissingError(f"no such server: {server}")
            await _lock_pool(conn)
            # Whatever an earlier run of the server held and did not give back is given back now.
            await conn.execute("DELETE FROM ip_leases WHERE server = %s", (server,))
            leases = []
            for nic, mac, ip in static:
                if await _get_resource(conn, user, ip, IP) is None:
                    raise MissingError(f"no such ip: {ip}")
                holder = await (await conn.execute("SELECT server FROM ip_leases WHERE ip = %s", (ip,))).fetchone()
                if holder is not None:
                    raise BusyError(f"ip {ip} is held by server {holder[0]}")
                await conn.execute(
                    "INSERT INTO ip_leases (ip, server, nic, mac, resource) VALUES (%s, %s, %s, %s, %s)",
                    (ip, server, nic, mac, ip),
                )
                leases.append(Lease(server, nic, mac, ip, auto=False))
            used = await _used_addresses(conn)
            for nic, mac in auto:
                free = first_free(first, last, used)
                if free is None:
                    raise PoolFull(nic, server)
                used.add(free)
                await conn.execute(
                    "INSERT INTO ip_leases (ip, server, nic, mac) VALUES (%s, %s, %s, %s)", (free, server, nic, mac)
                )
                leases.append(Lease(server, nic, mac, free, auto=True))
            return leases

        try:
            return await self._write(lease)
        except pg_errors.UniqueViolation:
            raise BusyError(f"an address server {server} asked for is held by another server") from None

    async def server_leases(self, user: str, server: str) -> list[Lease]:
        rows = await self._all(
            "SELECT l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l JOIN servers s ON s.id = l.server"
            " WHERE l.server = %s AND s.owner = %s ORDER BY l.nic",
            (server, user),
        )
        return [_lease(row) for row in rows]

    async def release_leases(self, user: str, server: str) -> None:
        await self._execute(
            "DELETE FROM ip_leases WHERE server = (SELECT id FROM servers WHERE id = %s AND owner = %s)", (server, user)
        )

    async def active_leases(self) -> list[tuple[str, Lease]]:
        rows = await self._all(
            "SELECT s.host, l.server, l.nic, l.mac, l.ip, l.resource FROM ip_leases l"
            " JOIN servers s ON s.id = l.server WHERE s.status = %s ORDER BY l.ip",
            (ACTIVE,),
        )
        return [(row[0], _lease(row[1:])) for row in rows]

    async def drop_stale_leases(self) -> int:
        return await self._execute(
            "DELETE FROM ip_leases WHERE server NOT IN (SELECT id FROM servers WHERE status = %s)", (ACTIVE,)
        )
