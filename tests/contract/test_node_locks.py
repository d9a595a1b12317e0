"""Store contract: node locks, node names and joining the nodes (CoordinationStore). Within one
store object on every store; across two store objects on one database (two nodes) where the
store is one several nodes share (PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from elastic_api.store import Store
from tests.contract.conftest import twin


async def _count_under_lock(stores: list[Store], key: str, tasks: int) -> int:
    """Each task reads a counter, yields (to the other tasks, and over the store's round trips to
    the other node), then writes it plus one, all under the node lock: a lost update is a lock
    that let two holders in at once."""
    counter = {"value": 0}

    async def bump(store: Store) -> None:
        async with store.node_lock("test", key):
            seen = counter["value"]
            for _ in range(3):
                await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            counter["value"] = seen + 1

    await asyncio.gather(*(bump(stores[n % len(stores)]) for n in range(tasks)))
    return counter["value"]


async def test_a_node_lock_lets_one_holder_in_at_a_time(contract_store):
    assert await _count_under_lock([contract_store], "k", 40) == 40


async def test_node_locks_on_different_keys_do_not_wait_for_each_other(contract_store):
    store = contract_store
    async with store.node_lock("test", "one"):
        async with asyncio.timeout(10):
            async with store.node_lock("test", "two"):
                pass


async def test_a_cancelled_waiter_leaves_the_lock_free(contract_store):
    store = contract_store
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with store.node_lock("test", "c"):
            entered.set()
            await release.wait()

    async def waiter() -> None:
        async with store.node_lock("test", "c"):
            raise AssertionError("the waiter got in while the holder held the lock")

    held = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await held
    async with asyncio.timeout(10):
        async with store.node_lock("test", "c"):
            pass


async def test_a_node_name_is_claimed_once(contract_store):
    store = contract_store
    assert await store.claim_node("inst/a")
    assert not await store.claim_node("inst/a")
    assert await store.claim_node("inst/b")


async def test_a_lone_node_joins_alone(contract_store):
    async with contract_store.join_nodes() as alone:
        assert alone is True


def _several(store: Store) -> None:
    if not store.several_nodes:
        pytest.skip("one process uses this store: there is no second node to keep out")


async def test_a_node_lock_holds_across_two_nodes(contract_store):
    _several(contract_store)
    async with twin(contract_store) as other:
        assert await _count_under_lock([contract_store, other], "k2", 40) == 40


async def test_a_node_name_held_by_a_live_node_is_refused_to_another_and_freed_by_its_end(contract_store):
    _several(contract_store)
    store = contract_store
    assert await store.claim_node("inst/a")
    async with twin(store) as other:
        assert not await other.claim_node("inst/a")
        assert await other.claim_node("inst/b")
    async with twin(store) as third:  # the twin closed: its name is free again
        assert await third.claim_node("inst/b")


async def test_the_first_node_joins_alone_and_keeps_the_others_out_of_its_block(contract_store):
    _several(contract_store)
    store = contract_store
    async with twin(store) as second, twin(store) as third:
        order: list[str] = []
        async with store.join_nodes() as alone:
            assert alone is True
            joining = asyncio.create_task(_join(second, "second", order))
            await asyncio.sleep(0.3)
            assert order == []  # waits while the lone node's block runs
            order.append("first done")
        await asyncio.wait_for(joining, 10)
        await _join(third, "third", order)
        assert order == ["first done", "second alone: False", "third alone: False"]
    async with twin(store) as fourth:  # the first is still running: not alone either
        await _join(fourth, "fourth", order)
        assert order[-1] == "fourth alone: False"


async def _join(store: Store, name: str, order: list[str]) -> None:
    async with store.join_nodes() as alone:
        order.append(f"{name} alone: {alone}")
