"""The audit trail: every changing call of either dialect, recorded off the hot path.

A call only appends its entry to a queue in memory (no await, no store trip); one task writes the
queue in groups, one transaction per `audit_batch` entries, `audit_flush_seconds` after the first
entry of a group arrived, so a burst of calls costs a few transactions rather than one each.
Recording never fails a call: a full queue drops the entry and a failed write drops its group,
and both are logged. A read of the trail writes what is queued first, so a caller sees its own
calls. Entries older than `audit_retention` are pruned as groups are written, at most once per
tenth of the retention (and at least hourly)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from elastic_api.errors import NotFound
from elastic_api.model.audit import AuditEntry, AuditQuery
from elastic_api.store.base import AuditStore

log = logging.getLogger(__name__)
NS = 10**9
PRUNE_AT_MOST_EVERY = 3600  # seconds: a long retention is still kept to within the hour


class AuditService:
    def __init__(
        self,
        store: AuditStore,
        *,
        retention: int,
        batch: int,
        queue: int,
        flush_seconds: float,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.retention = retention  # seconds; 0 keeps every entry
        self.batch = batch
        self.queue = queue
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._pending: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._pruned = 0  # ns of the last prune
        self.dropped = 0  # entries lost to a full queue or a failed write, since start
        self.transactions = 0  # groups written, since start (tests count them)

    # -- the hot path -------------------------------------------------------------------------
    def record(self, entry: AuditEntry) -> None:
        """Queue an entry; returns at once. Never raises for want of room: it drops and logs."""
        if self._closed or len(self._pending) >= self.queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "audit queue %s: %d entries dropped so far (latest: %s %s by %s)",
                    "closed" if self._closed else f"full ({self.queue})",
                    self.dropped,
                    entry.method,
                    entry.route,
                    entry.actor.user,
                )
            return
        self._pending.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flusher(), name="audit-flusher")
        self._wake.set()

    async def _flusher(self) -> None:
        while not self._closed:
            await self._wake.wait()
            if not self._closed:
                # Let the group gather: the calls of a burst share one transaction (a close cuts it short).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.flush_seconds)
            self._wake.clear()
            await self.flush()

    # -- writing ------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write everything queued now, in groups of at most `batch` (one transaction each)."""
        async with self._writing:
            while self._pending:
                group, self._pending = self._pending[: self.batch], self._pending[self.batch :]
                try:
                    # Shielded: a cancelled flush must not leave a group half known (committed or not).
                    await asyncio.shield(self.store.insert_audit(group))
                    self.transactions += 1
                except Exception as e:
                    self.dropped += len(group)
                    log.warning(
                        "could not record %d audit entries (%s: %s); the calls themselves are done",
                        len(group),
                        type(e).__name__,
                        e,
                    )
            await self._prune()

    async def _prune(self) -> None:
        if not self.retention:
            return
        now = self.clock()
        if now - self._pruned < min(PRUNE_AT_MOST_EVERY, self.retention / 10) * NS:
            return
        self._pruned = now
        try:
            gone = await self.store.prune_audit(now - self.retention * NS)
        except Exception as e:
            log.warning("could not prune the audit trail (%s: %s); trying again later", type(e).__name__, e)
            return
        if gone:
            log.info("pruned %d audit entries older than %d s", gone, self.retention)

    async def close(self) -> None:
        """Write what is queued and stop; entries recorded after this are dropped (logged)."""
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    # -- reading ------------------------------------------------------------------------------
    async def page(self, user: str, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
        """How many of the user's entries match, and one page of them, newest first."""
        await self.flush()
        return await self.store.audit_page(user, query)

    async def get(self, user: str, id_: int, *, group: str | None = None) -> AuditEntry:
        """The user's entry (made through `group`'s tokens, when given); 404 otherwise."""
        await self.flush()
        found = await self.store.get_audit(user, id_)
        if found is None or (group is not None and found.actor.group != group):
            raise NotFound(f"log not found: {id_}")
        return found
