"""Node locks and node names on PostgreSQL: session advisory locks on one connection of the
node's own, outside the pool.

Why a connection of its own: a lock is held across a critical section that makes store calls
of its own (a guest's start activates its row, leases addresses …). Held on a pooled connection,
ten sections at once would hold the whole pool and wait forever for an eleventh connection.
Why try-and-poll rather than a waiting pg_advisory_lock: one connection runs one statement at a
time, so a waiting lock would stall every other key's lock and unlock behind it. Within the
process, an asyncio lock per key comes first, so only one task per key asks PostgreSQL and
the polls are between nodes only, for a key another node holds (rare: one server's start on
two nodes at once). The node's names (claim_node) are session locks on the same connection.

A lost connection loses the session's locks (PostgreSQL releases them): the next call
reconnects, takes the names back (a name another process took meanwhile is logged, not
fatal: its jobs' leases still expire), and sections in progress finish unguarded (logged)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg

from elastic_api.store.locks import LockTable

log = logging.getLogger(__name__)
# How often a lock another node holds is asked for again: from the first to the last delay,
# doubling. The longest wait adds at most this to a section that waited for one on another node.
_POLL_FIRST = 0.005
_POLL_LAST = 0.2
_HASH = "SELECT {}(hashtextextended(%s, 0))"


class NodeLockConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._turn = asyncio.Lock()  # one statement at a time on the connection
        self._local = LockTable()
        self._names: set[str] = set()
        self._joined = False  # holding the "nodes" key shared (see join)
        self._late: set[asyncio.Future[bool]] = set()  # releases of locks a cancelled caller got
        self.generation = 0  # counts connections made: a lock taken on an older one is gone

    async def _call(self, function: str, key: str) -> bool:
        async with self._turn:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        await self._connect()
                    assert self._conn is not None
                    row = await (await self._conn.execute(_HASH.format(function), (key,))).fetchone()
                    return bool(row and row[0])
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
                    log.warning("node lock connection lost; reconnecting (locks held are released)")
                    if self._conn is not None:
                        await self._conn.close()
                    self._conn = None
            raise AssertionError("unreachable")

    async def _connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        self.generation += 1
        for name in sorted(self._names):
            row = await (await self._conn.execute(_HASH.format("pg_try_advisory_lock"), (_name_key(name),))).fetchone()
            if not (row and row[0]):
                log.error("node name %s was taken by another process while this one's connection was down", name)
        if self._joined:
            await self._conn.execute(_HASH.format("pg_advisory_lock_shared"), (_NODES,))

    @asynccontextmanager
    async def _hold(self, key: str) -> AsyncIterator[None]:
        async with self._local.hold(key):
            delay = _POLL_FIRST
            while not await self._try(key):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_LAST)
            generation = self.generation
            try:
                yield
            finally:
                if generation == self.generation:  # else PostgreSQL has released it already
                    try:
                        await asyncio.shield(self._call("pg_advisory_unlock", key))
                    except psycopg.Error as e:  # the session's end releases it
                        log.warning("node lock %s not released: %s", key, e)

    async def _try(self, key: str) -> bool:
        """One try at the lock, shielded: a caller cancelled while the statement runs must not
        leave a lock taken that nobody will release (it is released as soon as it is known)."""
        attempt = asyncio.ensure_future(self._call("pg_try_advisory_lock", key))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(lambda done: self._release_late(done, key))
            raise

    def _release_late(self, attempt: asyncio.Future[bool], key: str) -> None:
        if not attempt.cancelled() and attempt.exception() is None and attempt.result():
            task = asyncio.ensure_future(self._call("pg_advisory_unlock", key))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        return self._hold(key)

    async def claim(self, name: str) -> bool:
        if name in self._names:
            return False
        if not await self._call("pg_try_advisory_lock", _name_key(name)):
            return False
        self._names.add(name)
        return True

    @asynccontextmanager
    async def join(self) -> AsyncIterator[bool]:
        """Every node holds the "nodes" key shared while it runs; one that finds nobody there
        holds it exclusive first, for its block, then shared (its own exclusive does not stop
        its shared one, so no other node slips in between)."""
        if await self._call("pg_try_advisory_lock", _NODES):
            try:
                yield True
            finally:
                await self._join_shared()
                await self._call("pg_advisory_unlock", _NODES)
            return
        await self._join_shared()
        yield False

    async def _join_shared(self) -> None:
        delay = _POLL_FIRST
        while not await self._call("pg_try_advisory_lock_shared", _NODES):  # one alone sweeps
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_LAST)
        self._joined = True

    async def close(self) -> None:
        async with self._turn:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            self._names.clear()
            self._joined = False


_NODES = "nodes"  # held shared by every running node


def _name_key(name: str) -> str:
    return f"node name:{name}"


class LockRows:
    """The store's CoordinationStore half (see NodeLockConnection)."""

    url: str
    several_nodes = True
    _node_locks: NodeLockConnection | None = None

    def _lock_connection(self) -> NodeLockConnection:
        if self._node_locks is None:
            self._node_locks = NodeLockConnection(self.url)
        return self._node_locks

    def node_lock(self, *key: str) -> AbstractAsyncContextManager[None]:
        return self._lock_connection().hold("node:" + ":".join(key))

    async def claim_node(self, node: str) -> bool:
        return await self._lock_connection().claim(node)

    def join_nodes(self) -> AbstractAsyncContextManager[bool]:
        return self._lock_connection().join()

    async def close_node_locks(self) -> None:
        if self._node_locks is not None:
            await self._node_locks.close()
            self._node_locks = None
