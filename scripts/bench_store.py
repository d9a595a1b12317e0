"""The store alone, SQLite against PostgreSQL: the calls a drive create and a drive info make,
one at a time (latency) and many at once (throughput), and quota admissions at once.

    .venv/bin/python scripts/bench_store.py --database postgresql://postgres@127.0.0.1:PORT/postgres

The PostgreSQL side runs in a new database made on that cluster and dropped after."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from elastic_api.config import Config
from elastic_api.model.drive import Drive
from elastic_api.model.quota import Quota
from elastic_api.service.quotas import QuotaService
from elastic_api.store import Store
from elastic_api.store.postgres import PostgresStore
from elastic_api.store.sqlite import SqliteStore


async def timed(calls: list[Callable[[], Awaitable[object]]], concurrency: int) -> tuple[float, list[float]]:
    """Wall time of all the calls, `concurrency` at a time, and each call's latency."""
    latencies: list[float] = []
    queue = list(calls)

    async def worker() -> None:
        while queue:
            call = queue.pop()
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def line(name: str, n: int, wall: float, latencies: list[float]) -> str:
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return (
        f"  {name:<28} {n / wall:8.0f}/s  median {statistics.median(latencies) * 1000:6.2f} ms"
        f"  p99 {p99 * 1000:6.2f} ms"
    )


async def bench(label: str, store: Store, n: int) -> None:
    await store.open()
    try:
        user = str(uuid.uuid4())
        await store.create_user(user, "bench", b"h" * 32, 0)

        def drive(i: int) -> Drive:
            return Drive(drive=str(uuid.uuid4()), owner=user, name=f"d{i}", size=1 << 20, created=i)

        print(label)
        for concurrency in (1, 16):
            drives = [drive(i) for i in range(n)]
            wall, lat = await timed([lambda d=d: store.insert_drive(d) for d in drives], concurrency)  # type: ignore[misc]
            print(line(f"insert_drive x{concurrency}", n, wall, lat))
            wall, lat = await timed([lambda d=d: store.get_drive(user, d.drive) for d in drives], concurrency)  # type: ignore[misc]
            print(line(f"get_drive x{concurrency}", n, wall, lat))
        quotas = QuotaService(Config(quotas=Quota(drives=None)), store)

        async def admit() -> None:
            async with quotas.drives(user, count=1, size=1):
                pass

        wall, lat = await timed([admit] * n, 16)
        print(line("quota admission x16", n, wall, lat))
        wall, lat = await timed([lambda: store.list_drives(user, 50, None)] * (n // 10), 4)
        print(line("list_drives(50) x4", n // 10, wall, lat))
    finally:
        await store.close()


async def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--database", required=True, help="a PostgreSQL URL (a database is made on its cluster)")
    args.add_argument("-n", type=int, default=2000)
    options = args.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        await bench("sqlite", SqliteStore(Path(directory) / "elastic.db"), options.n)
    name = "bench_" + uuid.uuid4().hex
    async with await psycopg.AsyncConnection.connect(options.database, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await bench("postgresql", PostgresStore(make_conninfo(options.database, dbname=name)), options.n)
    finally:
        async with await psycopg.AsyncConnection.connect(options.database, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
