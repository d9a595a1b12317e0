"""The store contract for ECS servers' snapshots (numbered, scoped by owner, limited per server even
at once, one last-restored per server, gone with their server) and users' templates (numbered,
scoped by owner, found by UUID for their owner only, changed field by field, limited per user),
and the snapshot and template actions listed among a user's actions."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from elastic_api.errors import QuotaExceeded
from elastic_api.model.ids import new_id
from elastic_api.model.job import CREATE_SNAPSHOT, CREATE_TEMPLATE, ROLLBACK, Job, SnapshotParams, TemplateParams
from elastic_api.model.snapshot import CREATED, CREATING, FAILED, Snapshot, Template
from tests.contract.conftest import users
from tests.contract.test_ecs_servers import ecs_server


def snapshot(owner: str, server: int, **changes: object) -> Snapshot:
    return dataclasses.replace(Snapshot(0, owner, server, "d", "n", CREATING, 5, 5), **changes)  # type: ignore[arg-type]


def template(owner: str, **changes: object) -> Template:
    base = Template(0, owner, new_id(), "d", "n", CREATING, "ec100001", None, 0, 7, "debian-12")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_snapshots_are_numbered_owned_and_restored_one_at_a_time(contract_store):
    store = contract_store
    alice, bob = await users(store)
    server = await store.insert_ecs_server(ecs_server(alice), [])
    other = await store.insert_ecs_server(ecs_server(alice), [])
    first = await store.insert_snapshot(snapshot(alice, server.id), limit=3)
    second = await store.insert_snapshot(snapshot(alice, server.id, parent=first.id, description="two"), limit=3)
    elsewhere = await store.insert_snapshot(snapshot(alice, other.id), limit=3)
    assert first.id < second.id < elsewhere.id
    assert second.parent == first.id and second.description == "two" and not second.last_restored
    assert await store.list_snapshots(alice, server.id) == [first, second]
    assert await store.list_snapshots(bob, server.id) == []
    assert await store.get_snapshot(alice, second.id) == second
    assert await store.get_snapshot(bob, second.id) is None
    assert await store.update_snapshot(first.id, CREATED, 9)
    assert (await store.get_snapshot(alice, first.id)).status == CREATED
    assert not await store.update_snapshot(10**6, FAILED, 9)
    # One last restored per server; another server's stays as it is.
    assert await store.mark_restored(first.id, 10) and await store.mark_restored(elsewhere.id, 10)
    assert await store.mark_restored(second.id, 11)
    assert [s.last_restored for s in await store.list_snapshots(alice, server.id)] == [False, True]
    assert (await store.get_snapshot(alice, elsewhere.id)).last_restored
    assert not await store.mark_restored(10**6, 1)
    assert await store.delete_snapshot(first.id) and not await store.delete_snapshot(first.id)
    # Gone with their server.
    assert await store.delete_ecs_server(server.id)
    assert await store.get_snapshot(alice, second.id) is None
    assert await store.get_snapshot(alice, elsewhere.id) is not None


async def test_snapshots_have_a_limit_per_server_even_at_once(contract_store):
    alice, _ = await users(contract_store)
    server = await contract_store.insert_ecs_server(ecs_server(alice), [])
    other = await contract_store.insert_ecs_server(ecs_server(alice), [])
    results = await asyncio.gather(
        *(contract_store.insert_snapshot(snapshot(alice, server.id), limit=3) for _ in range(6)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert len(await contract_store.list_snapshots(alice, server.id)) == 3
    assert await contract_store.insert_snapshot(snapshot(alice, other.id), limit=3)


async def test_templates_are_numbered_owned_and_changed_field_by_field(contract_store):
    store = contract_store
    alice, bob = await users(store)
    first = await store.insert_template(template(alice), limit=5)
    second = await store.insert_template(template(alice, snapshot=4, description="two"), limit=5)
    theirs = await store.insert_template(template(bob), limit=5)
    assert first.id < second.id < theirs.id and first.name != second.name
    assert second.snapshot == 4 and second.so == "debian-12" and second.created == 7
    assert await store.list_templates(alice) == [first, second]
    assert await store.get_template(alice, theirs.id) is None
    assert await store.get_template(bob, theirs.id) == theirs
    assert await store.template_by_uuid(alice, second.uuid) == second
    assert await store.template_by_uuid(alice, theirs.uuid) is None
    assert await store.update_template(first.id, status=CREATED, size=3 * 1024**3)
    assert await store.update_template(first.id, notes="new")
    got = await store.get_template(alice, first.id)
    assert (got.status, got.size, got.notes, got.description, got.required_disk_gb) == (
        CREATED,
        3 * 1024**3,
        "new",
        "d",
        3,
    )
    assert await store.update_template(first.id) and not await store.update_template(10**6, notes="x")
    with pytest.raises(ValueError):
        await store.update_template(first.id, owner=bob)
    assert await store.delete_template(first.id) and not await store.delete_template(first.id)
    assert await store.list_templates(alice) == [second]


async def test_templates_have_a_limit_per_user_even_at_once(contract_store):
    alice, bob = await users(contract_store)
    results = await asyncio.gather(
        *(contract_store.insert_template(template(alice), limit=2) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert len(await contract_store.list_templates(alice)) == 2
    assert await contract_store.insert_template(template(bob), limit=2)


async def test_snapshot_and_template_jobs_are_actions_with_their_parameters(contract_store):
    store = contract_store
    alice, _ = await users(store)
    server = await store.insert_ecs_server(ecs_server(alice), [])
    jobs = [
        Job(0, CREATE_SNAPSHOT, alice, server.name, SnapshotParams(3)),
        Job(0, ROLLBACK, alice, server.name, SnapshotParams(3, restart=True)),
        Job(0, CREATE_TEMPLATE, alice, server.name, TemplateParams(2, snapshot=3)),
    ]
    for job in jobs:
        await store.add_job(job)
    found = await store.ecs_actions(alice, None)
    assert sorted((j.kind, j.params) for j in found) == sorted((j.kind, j.params) for j in jobs)
