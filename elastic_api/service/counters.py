"""The drives' I/O counters, added up in memory and stored in batches.

A read or write used to wait for an UPDATE of its own (a commit, a disk sync) before its answer
was complete: for a 4 MiB read from the page cache that was most of the request's cost. Now each
request adds to a dict on the event loop; a task stores the whole batch in one transaction every
`io_counter_flush_seconds`, and once more at a clean shutdown. Info adds what is pending to what
is stored, so a client sees its counts at once, as before.

What a crash may lose: the counts of the last interval (at most `io_counter_flush_seconds` of
I/O; a store that fails keeps its batch and tries again at the next flush, so a full metadata
disk delays counts rather than losing them, unless the process dies meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from elastic_api.model.drive import IoCounts
from elastic_api.store.base import DriveStore

log = logging.getLogger(__name__)
NONE = IoCounts()


class IoCounters:
    def __init__(self, store: DriveStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._pending: dict[str, IoCounts] = {}
        self._flushing: dict[str, IoCounts] = {}  # the batch being stored (still shown by pending())
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._soon: asyncio.Task[None] | None = None

    def add(self, drive: str, counts: IoCounts) -> None:
        self._pending[drive] = self._pending.get(drive, NONE) + counts
        if self._interval <= 0 and self._soon is None:
            # An interval of 0: stored at once, the counts of requests meanwhile in one batch.
            self._soon = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await self.flush()
        finally:
            self._soon = None

    def pending(self, drive: str) -> IoCounts:
        """Counts made and not yet stored, to add to the stored counters."""
        pending, flushing = self._pending.get(drive), self._flushing.get(drive)
        if flushing is None:  # the usual case, without an addition (every `info` asks)
            return NONE if pending is None else pending
        return flushing if pending is None else pending + flushing

    def start(self) -> None:
        if self._task is None and self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the interval and store what is pending (a clean shutdown loses no count)."""
        if self._soon is not None:
            await asyncio.wait([self._soon])
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            # Shielded: a close() arriving mid-store waits for it (through the lock) rather than
            # dropping a batch that may already be committed.
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Store every pending count in one transaction; on failure they stay pending."""
        async with self._lock:
            if not self._pending:
                return
            self._flushing, self._pending = self._pending, {}
            try:
                await self._store.add_drive_io(self._flushing)
            except Exception as e:  # the I/O itself stands: keep its counts for the next try
                log.warning(
                    "I/O counters not stored (%s): %s; %d drive(s)' counts kept for the next try",
                    type(e).__name__,
                    e,
                    len(self._flushing),
                )
                for drive, counts in self._flushing.items():
                    self.add(drive, counts)
            finally:
                self._flushing = {}


__all__ = ["IoCounters"]
