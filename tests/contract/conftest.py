"""The store contract: one set of tests that every store implementation must pass.

Each test takes `contract_store`, which is every implementation in turn: SQLite in the test's
directory, and PostgreSQL in a database of its own on the cluster scripts/test.sh starts
(skipped when there is none, except in the real suite: see tests/postgres.py). Tests here speak
only the Store interface: what is particular to one engine (pragmas, query plans, schema
triggers) is tested beside that engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from elastic_api.model.drive import Drive
from elastic_api.model.ids import new_id
from elastic_api.model.resource import Resource
from elastic_api.api.elastichosts.codec.server import parse_config
from elastic_api.model.server_record import ServerRecord
from elastic_api.store import Store
from elastic_api.store.postgres import PostgresStore
from elastic_api.store.sqlite import SqliteStore
from tests.postgres import fresh_database


@asynccontextmanager
async def _sqlite(directory: Path) -> AsyncIterator[Store]:
    yield SqliteStore(directory / "db" / "elastic.db")


@asynccontextmanager
async def _postgres(directory: Path) -> AsyncIterator[Store]:
    async with fresh_database() as url:
        yield PostgresStore(url)


STORES: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(STORES))
async def contract_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with STORES[request.param](tmp_path) as store:
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def users(store: Store, n: int = 2) -> list[str]:
    ids = [new_id() for _ in range(n)]
    for i, user in enumerate(ids):
        await store.create_user(user, f"u{i}", b"h" * 32, i)
    return ids


def drive(owner: str, created: int, **kw: object) -> Drive:
    return Drive(drive=new_id(), owner=owner, name="d", size=1024, created=created, **kw)  # type: ignore[arg-type]


def ip(owner: str, created: int = 1) -> Resource:
    return Resource("", "ip", owner, created=created)


def server_record(owner: str, created: int = 1, props: dict[str, str] | None = None) -> ServerRecord:
    sid = new_id()
    config = parse_config({"name": "s", "cpu": "1000", "mem": "64", **(props or {})}, sid)
    return ServerRecord(sid, owner, config, created=created)


async def active_server(store: Store, owner: str, **props: str) -> str:
    record = server_record(owner, props=props)
    await store.insert_server(record)
    await store.activate_server(owner, record.server, "h", 1, [])
    return record.server


@asynccontextmanager
async def twin(store: Store) -> AsyncIterator[Store]:
    """A second store on the same database, as a second node would open it: its own connection
    (SQLite) or its own pool (PostgreSQL), so its writes race the first store's for real."""
    other: Store
    if isinstance(store, PostgresStore):
        other = PostgresStore(store.url)
    else:
        assert isinstance(store, SqliteStore)
        other = SqliteStore(store.path)
    await other.open()
    try:
        yield other
    finally:
        await other.close()
