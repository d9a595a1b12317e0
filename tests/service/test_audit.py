"""The audit service off the hot path: entries queue without a store trip, are written in
groups of at most `batch`, a full queue or a failed write drops (and counts) instead of failing
anyone, old entries are pruned at most once per tenth of the retention, and close writes the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from elastic_api.model.audit import Actor, AuditEntry, AuditQuery, Credential
from elastic_api.service.audit import NS, AuditService

USER = "11111111-1111-4111-8111-111111111111"


def entry(n: int = 0, at: int = 0) -> AuditEntry:
    return AuditEntry(Actor(USER, Credential.BASIC), "elastichosts", "POST", "/drives/create", str(n), at, 200)


class FakeStore:
    def __init__(self) -> None:
        self.groups: list[list[AuditEntry]] = []
        self.pruned: list[int] = []
        self.fail = False

    async def insert_audit(self, entries: Sequence[AuditEntry]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("no")
        self.groups.append(list(entries))

    async def prune_audit(self, before: int) -> int:
        self.pruned.append(before)
        return 0

    async def audit_page(self, user: str, query: AuditQuery) -> tuple[int, list[AuditEntry]]:
        found = [e for group in self.groups for e in group]
        return len(found), found

    async def get_audit(self, user: str, id_: int) -> AuditEntry | None:
        return None


def service(store: FakeStore, **kw: object) -> AuditService:
    options: dict[str, object] = {"retention": 0, "batch": 10, "queue": 1000, "flush_seconds": 0.01, **kw}
    return AuditService(store, **options)  # type: ignore[arg-type]


async def test_a_burst_is_written_in_groups():
    store = FakeStore()
    audit = service(store, batch=10, flush_seconds=0.05)
    for n in range(25):
        audit.record(entry(n))  # synchronous: no await, no store trip
    assert store.groups == []
    total, found = await audit.page(USER, AuditQuery())
    assert total == 25 and [len(g) for g in store.groups] == [10, 10, 5] and audit.transactions == 3
    assert [e.target for e in found] == [str(n) for n in range(25)]  # in order
    await audit.close()


async def test_the_flusher_writes_without_a_read():
    store = FakeStore()
    audit = service(store)
    audit.record(entry())
    for _ in range(200):
        if store.groups:
            break
        await asyncio.sleep(0.01)
    assert len(store.groups) == 1
    await audit.close()


async def test_a_full_queue_drops_and_logs(caplog):
    store = FakeStore()
    audit = service(store, queue=3, flush_seconds=30)
    for n in range(5):
        audit.record(entry(n))
    assert audit.dropped == 2 and "audit queue full (3)" in caplog.text
    await audit.close()  # cuts the 30 s wait short
    assert [len(g) for g in store.groups] == [3]


async def test_a_failed_write_drops_its_group_and_the_next_one_goes_on(caplog):
    store = FakeStore()
    audit = service(store)
    store.fail = True
    audit.record(entry(1))
    await audit.flush()
    assert audit.dropped == 1 and "could not record 1 audit entries" in caplog.text
    store.fail = False
    audit.record(entry(2))
    await audit.flush()
    assert [[e.target for e in g] for g in store.groups] == [["2"]]
    await audit.close()


async def test_close_writes_what_is_queued_and_later_entries_are_dropped():
    store = FakeStore()
    audit = service(store, flush_seconds=30)
    audit.record(entry(1))
    await asyncio.wait_for(audit.close(), 5)
    assert len(store.groups) == 1
    audit.record(entry(2))
    assert audit.dropped == 1


async def test_pruning_at_most_once_per_tenth_of_the_retention():
    store = FakeStore()
    now = [1_000_000 * NS]
    audit = service(store, retention=600, clock=lambda: now[0])
    audit.record(entry())
    await audit.flush()
    assert store.pruned == [now[0] - 600 * NS]
    now[0] += 59 * NS
    audit.record(entry())
    await audit.flush()
    assert len(store.pruned) == 1  # within a tenth of the retention (60 s): not again
    now[0] += 1 * NS
    audit.record(entry())
    await audit.flush()
    assert store.pruned[-1] == now[0] - 600 * NS and len(store.pruned) == 2
    await audit.close()


async def test_no_pruning_without_retention():
    store = FakeStore()
    audit = service(store, retention=0)
    audit.record(entry())
    await audit.close()
    assert store.pruned == [] and len(store.groups) == 1
