"""A fresh PostgreSQL database per test, on the cluster scripts/test.sh starts
(ELASTIC_TEST_POSTGRES names its maintenance database). Without it the PostgreSQL tests skip,
unless ELASTIC_TEST_REQUIRE_LIBVIRT=1 (the real suite), where a missing database fails them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

ENV = "ELASTIC_TEST_POSTGRES"


def cluster_url() -> str:
    url = os.environ.get(ENV, "")
    if not url:
        if os.environ.get("ELASTIC_TEST_REQUIRE_LIBVIRT") == "1":
            pytest.fail(f"{ENV} is not set: scripts/test.sh starts a PostgreSQL cluster and sets it")
        pytest.skip(f"{ENV} is not set (scripts/test.sh starts a PostgreSQL cluster and sets it)")
    return url


def database_url(url: str, name: str) -> str:
    """`url` with its database replaced by `name` (libpq's key=value form)."""
    return make_conninfo(url, dbname=name)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database for one test (dropped after it); its URL."""
    url = cluster_url()
    name = "t_" + uuid.uuid4().hex
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(url, name)
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database_sync() -> Iterator[str]:
    """fresh_database for a test that is not a coroutine (one that runs the real program)."""
    url = cluster_url()
    name = "t_" + uuid.uuid4().hex
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
