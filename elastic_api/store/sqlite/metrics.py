"""Servers' sampled counters (see MetricsStore): rows keyed by server and time, gone with their server."""

from __future__ import annotations

import sqlite3

from elastic_api.model.metrics import MetricSample
from elastic_api.store.sqlite.engine import SqliteEngine

_COLUMNS = "server, at, run, cpu_ns, vcpus, read_bytes, write_bytes, rx_bytes, tx_bytes"


class MetricsRows(SqliteEngine):
    async def add_samples(self, samples: list[MetricSample]) -> int:
        rows = [
            (s.server, s.at, s.run, s.cpu_ns, s.vcpus, s.read_bytes, s.write_bytes, s.rx_bytes, s.tx_bytes)
            for s in samples
        ]

        def insert(db: sqlite3.Connection) -> int:
            # A server deleted since its sample was read has no row to hang it on: the sample is
            # dropped (the foreign key would refuse it), as is a repeat of one already kept.
            kept = 0
            for row in rows:
                kept += db.execute(
                    f"INSERT OR IGNORE INTO server_samples ({_COLUMNS})"
                    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM servers WHERE id = ?)",
                    (*row, row[0]),
                ).rowcount
            return kept

        return await self._write(insert) if rows else 0

    async def server_samples(self, user: str, server: str, since: float) -> list[MetricSample]:
        found = await self._run(
            lambda: self.db.execute(
                f"SELECT {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM server_samples m"
                " JOIN servers s ON s.id = m.server WHERE m.server = ? AND s.owner = ? AND m.at >= ? ORDER BY m.at",
                (server, user, since),
            ).fetchall()
        )
        return [MetricSample(*row) for row in found]

    async def prune_samples(self, before: float) -> int:
        return await self._write(
            lambda db: db.execute("DELETE FROM server_samples WHERE at < ?", (before,)).rowcount, freeing=True
        )
