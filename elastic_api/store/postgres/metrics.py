"""Servers' sampled counters (see MetricsStore): rows keyed by server and time, gone with their server."""

from __future__ import annotations

from psycopg import errors as pg_errors

from elastic_api.model.metrics import MetricSample
from elastic_api.store.postgres.engine import Conn, PostgresEngine

_COLUMNS = ("server", "at", "run", "cpu_ns", "vcpus", "read_bytes", "write_bytes", "rx_bytes", "tx_bytes")
_TYPES = ("text", "float8", "int8", "int8", "int4", "int8", "int8", "int8", "int8")


class MetricsRows(PostgresEngine):
    async def add_samples(self, samples: list[MetricSample]) -> int:
        if not samples:
            return 0
        # Each column one Python type (psycopg dumps a list as an array of one type): `at` may come as an int.
        kinds = {"text": str, "float8": float}
        columns = [[kinds.get(t, int)(getattr(s, c)) for s in samples] for c, t in zip(_COLUMNS, _TYPES, strict=True)]
        # One statement for the lot: the samples of servers that exist (the join drops a server
        # deleted since it was read), a repeat of a kept one skipped by the primary key.
        sql = (
            f"INSERT INTO server_samples ({', '.join(_COLUMNS)})"
            f" SELECT u.* FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) AS u({', '.join(_COLUMNS)})"
            " JOIN servers s ON s.id = u.server ON CONFLICT (server, at) DO NOTHING"
        )

        async def insert(conn: Conn) -> int:
            return (await conn.execute(sql, columns)).rowcount

        for _ in range(3):
            try:
                return await self._write(insert)
            except pg_errors.ForeignKeyViolation:
                continue  # a server deleted between the join and the check: its samples go next time
        return await self._write(insert)

    async def server_samples(self, user: str, server: str, since: float) -> list[MetricSample]:
        rows = await self._all(
            f"SELECT {', '.join('m.' + c for c in _COLUMNS)} FROM server_samples m"
            " JOIN servers s ON s.id = m.server WHERE m.server = %s AND s.owner = %s AND m.at >= %s ORDER BY m.at",
            (server, user, since),
        )
        return [MetricSample(*row) for row in rows]

    async def prune_samples(self, before: float) -> int:
        return await self._execute("DELETE FROM server_samples WHERE at < %s", (before,))
