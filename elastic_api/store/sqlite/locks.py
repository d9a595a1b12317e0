"""Node locks and node names on SQLite: one process uses the file, so an in-process lock per key
is the whole of node_lock, and a name is only ever claimed twice by the same store object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from elastic_api.store.locks import LockTable


class LockRows:
    several_nodes = False
    _node_locks: LockTable | None = None
    _nodes: set[str] | None = None

    def node_lock(self, *key: str) -> AbstractAsyncContextManager[None]:
        if self._node_locks is None:
            self._node_locks = LockTable()
        return self._node_locks.hold(":".join(key))

    async def claim_node(self, node: str) -> bool:
        if self._nodes is None:
            self._nodes = set()
        if node in self._nodes:
            return False
        self._nodes.add(node)
        return True

    @asynccontextmanager
    async def join_nodes(self) -> AsyncIterator[bool]:
        yield True
