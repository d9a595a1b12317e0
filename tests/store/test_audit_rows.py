"""The audit trail's and support records' rows on the real SQLite store: a group in one
transaction, pages newest first scoped by owner, target and group, markers, pruning, and the
migration on a database the previous version wrote (its rows load unchanged)."""

from __future__ import annotations

import sqlite3

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.audit import Actor, AuditEntry, AuditQuery, Credential
from elastic_api.model.support import SupportPlan, SupportRecord
from elastic_api.store.migrations import MIGRATIONS
from elastic_api.store.sqlite import SqliteStore, _statements

ALICE, BOB = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
AUDIT_MIGRATION = 1 + next(
    i for i, step in enumerate(MIGRATIONS) if isinstance(step, str) and "CREATE TABLE audit_log" in step
)


def entry(user: str, target: str | None, at: int, group: str | None = None) -> AuditEntry:
    return AuditEntry(Actor(user, Credential.API_TOKEN, group), "ecs", "DELETE", "/groups/{id}", target, at, 200)


@pytest.fixture
async def users(store):
    for user in (ALICE, BOB):
        await store.create_user(user, "u", b"h", 0)
    return store


async def test_pages_newest_first_scoped_by_owner_target_and_group(users):
    store = users
    await store.insert_audit(
        [entry(ALICE, "a", 1), entry(ALICE, "b", 2, "eg100001"), entry(BOB, "a", 3), entry(ALICE, "a", 4)]
    )
    total, found = await store.audit_page(ALICE, AuditQuery())
    assert total == 3 and [(e.target, e.at) for e in found] == [("a", 4), ("b", 2), ("a", 1)]
    assert found[1].actor == Actor(ALICE, Credential.API_TOKEN, "eg100001") and found[0].id > found[1].id
    total, found = await store.audit_page(ALICE, AuditQuery(target="a", limit=1))
    assert total == 2 and [e.at for e in found] == [4]
    total, found = await store.audit_page(ALICE, AuditQuery(target="a", before=found[0].id))
    assert total == 2 and [e.at for e in found] == [1]
    assert (await store.audit_page(ALICE, AuditQuery(group="eg100001")))[0] == 1
    assert [e.at for e in (await store.audit_page(ALICE, AuditQuery(offset=1, limit=5)))[1]] == [2, 1]
    bobs = (await store.audit_page(BOB, AuditQuery()))[1][0]
    with pytest.raises(UsageError):
        await store.audit_page(ALICE, AuditQuery(before=bobs.id))
    assert await store.get_audit(ALICE, bobs.id) is None and await store.get_audit(BOB, bobs.id) == bobs


async def test_a_group_is_one_transaction(users):
    with pytest.raises(sqlite3.IntegrityError):  # an owner who is no user: the whole group is refused
        await users.insert_audit([entry(ALICE, "a", 1), entry("nobody", "a", 2)])
    assert (await users.audit_page(ALICE, AuditQuery()))[0] == 0


async def test_prune(users):
    await users.insert_audit([entry(ALICE, "a", at) for at in (1, 2, 3)] + [entry(BOB, "a", 1)])
    assert await users.prune_audit(3) == 3
    assert [e.at for e in (await users.audit_page(ALICE, AuditQuery()))[1]] == [3]


async def test_support_compare_and_set(users):
    plan = SupportPlan("basic", "Basic", 1)
    first = SupportRecord("srv", ALICE, plan, 10, None)
    assert await users.replace_support(first, None)
    assert not await users.replace_support(first, None)  # it changed meanwhile
    second = SupportRecord("srv", ALICE, plan, 20, 30)
    assert await users.replace_support(second, first)
    assert await users.cancel_support(ALICE, "srv", first, 40) is None
    assert await users.cancel_support(BOB, "srv", second, 40) is None
    done = await users.cancel_support(ALICE, "srv", second, 40)
    assert done is not None and done.cancelled_at == 40 and await users.get_support(ALICE, "srv") == done


async def test_the_migration_keeps_older_rows(tmp_path):
    path = tmp_path / "elastic.db"
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[: AUDIT_MIGRATION - 1]:
        if callable(script):
            script(db)
        else:
            for statement in _statements(script):
                db.execute(statement)
    db.execute(f"PRAGMA user_version = {AUDIT_MIGRATION - 1}")
    db.execute("INSERT INTO users (id, name, secret_hash, created) VALUES (?, 'alice', x'68', 5)", (ALICE,))
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.user_secret_hash(ALICE) == b"h"
        await store.insert_audit([entry(ALICE, "x", 1)])
        assert (await store.audit_page(ALICE, AuditQuery()))[0] == 1
        assert await store.get_support(ALICE, "srv") is None and await store.reserved_until("srv") is None
    finally:
        await store.close()
