"""Locks on objects across every node sharing the store, what one node's requests are doing with
a drive's bytes, and upload slots (per node: see UploadSlots)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

from elastic_api.errors import UnavailableError
from elastic_api.store.base import CoordinationStore
from elastic_api.store.locks import LockTable


class NodeLocks:
    """Locks on one kind of object (servers, drives, resources …) that hold across every node
    sharing the store (store.node_lock): a critical section that spans a hypervisor call and
    store writes (a guest's start, stop or destroy, a drive's resize or destroy) runs on one
    node at a time. On SQLite, which one process uses, that is an in-process lock, as before."""

    def __init__(self, store: CoordinationStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        return self.store.node_lock(self.kind, key)


class DriveUse:
    """Who is using each drive's bytes right now: reads and writes in flight (an image job's
    reading of its source among them). Destroy refuses a drive in use; an image job waits for
    the writes into its target to drain."""

    def __init__(self) -> None:
        self._io: dict[str, int] = {}
        self._drained: dict[str, asyncio.Event] = {}

    def io(self, drive: str) -> _InUse:
        """The drive in use for the `with` block (a plain context manager: every read takes one,
        and a generator-made one cost a busy download loop more than the bookkeeping)."""
        return _InUse(self, drive)

    def begin_io(self, drive: str) -> None:
        """The drive in use until the matching end_io (io's block, or a Reading's)."""
        count = self._io.get(drive, 0)
        self._io[drive] = count + 1
        if not count:
            self._drained[drive] = asyncio.Event()

    def end_io(self, drive: str) -> None:
        self._io[drive] -= 1
        if not self._io[drive]:
            del self._io[drive]
            self._drained.pop(drive).set()

    def in_use(self, drive: str) -> bool:
        return drive in self._io

    async def drained(self, drive: str) -> None:
        event = self._drained.get(drive)
        if event is not None:
            await event.wait()


class _InUse:
    __slots__ = ("_drive", "_use")

    def __init__(self, use: DriveUse, drive: str) -> None:
        self._use, self._drive = use, drive

    def __enter__(self) -> None:
        self._use.begin_io(self._drive)

    def __exit__(self, *_: object) -> None:
        self._use.end_io(self._drive)


class UploadSlots:
    """Writes receiving a body at once, per user and in all. A write that finds no free slot is
    refused at once (503 with Retry-After) rather than queued: a queued body still occupies
    its connection and the client's retry with backoff is the better queue. Per node: a slot
    bounds what this process's memory, threads and connections hold, so N nodes behind a load
    balancer admit N times max_uploads in all (the pool's disk is shared, its bandwidth too)."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._by_user: dict[str, int] = {}
        self._all = 0

    @contextmanager
    def take(self, user: str) -> Iterator[None]:
        held = self._by_user.get(user, 0)
        if self._all >= self.total:
            raise UnavailableError(f"too many uploads in progress ({self.total}); try again shortly")
        if held >= self.per_user:
            raise UnavailableError(f"too many uploads in progress for this user ({self.per_user}); try again shortly")
        self._by_user[user] = held + 1
        self._all += 1
        try:
            yield
        finally:
            self._all -= 1
            if self._by_user[user] == 1:
                del self._by_user[user]
            else:
                self._by_user[user] -= 1

    def __len__(self) -> int:
        return self._all


__all__ = ["DriveUse", "LockTable", "NodeLocks", "UploadSlots"]
