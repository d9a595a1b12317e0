"""The store contract for servers' sampled counters: kept per server, owned through it, pruned by
time, gone with the server, dropped for a server that no longer exists."""

from __future__ import annotations

import asyncio

from elastic_api.model.ids import new_id
from elastic_api.model.metrics import MetricSample
from tests.contract.conftest import active_server, server_record, users


def sample(server: str, at: float, cpu_ns: int = 0) -> MetricSample:
    return MetricSample(server, at, 1, cpu_ns, 1, 2, 3, 4, 5)


async def test_samples_are_kept_in_time_order_and_owned(contract_store):
    store = contract_store
    alice, bob = await users(store)
    mine = await active_server(store, alice)
    theirs = await active_server(store, bob)
    assert await store.add_samples([sample(mine, 20.5, 2), sample(mine, 10.25, 1), sample(theirs, 15, 9)]) == 3
    assert await store.server_samples(alice, mine, 0) == [sample(mine, 10.25, 1), sample(mine, 20.5, 2)]
    assert await store.server_samples(alice, mine, 11) == [sample(mine, 20.5, 2)]
    # Another user's server answers like a missing one.
    assert await store.server_samples(alice, theirs, 0) == []
    assert await store.server_samples(bob, theirs, 0) == [sample(theirs, 15, 9)]
    assert await store.server_samples(alice, new_id(), 0) == []


async def test_a_repeat_or_a_deleted_servers_sample_is_dropped_not_an_error(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    server = await active_server(store, alice)
    assert await store.add_samples([sample(server, 1), sample(new_id(), 1)]) == 1
    assert await store.add_samples([sample(server, 1, cpu_ns=7)]) == 0
    assert await store.server_samples(alice, server, 0) == [sample(server, 1)]
    assert await store.add_samples([]) == 0


async def test_pruning_drops_only_what_is_older(contract_store):
    store = contract_store
    alice, bob = await users(store)
    mine, theirs = await active_server(store, alice), await active_server(store, bob)
    await store.add_samples([sample(mine, t) for t in (1, 2, 3)] + [sample(theirs, t) for t in (1, 5)])
    assert await store.prune_samples(3) == 3
    assert await store.server_samples(alice, mine, 0) == [sample(mine, 3)]
    assert await store.server_samples(bob, theirs, 0) == [sample(theirs, 5)]
    assert await store.prune_samples(3) == 0


async def test_samples_go_with_their_server(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    server = await active_server(store, alice)
    other = server_record(alice)
    await store.insert_server(other)
    await store.add_samples([sample(server, 1), sample(other.server, 1)])
    assert await store.delete_server(alice, server)
    # A server made again with the same ID would start with no history.
    assert await store.add_samples([]) == 0
    assert await store.prune_samples(10) == 1  # only the other server's sample was left


async def test_samples_added_while_their_server_is_deleted(contract_store):
    """Each call is one transaction: the samples are kept and then go with the server, or are
    dropped; nothing is left behind and nothing fails."""
    store = contract_store
    (alice,) = await users(store, 1)
    server = await active_server(store, alice)
    results = await asyncio.gather(
        store.add_samples([sample(server, t) for t in range(20)]), store.delete_server(alice, server)
    )
    assert results[1] is True and results[0] in (0, 20)
    assert await store.prune_samples(100) == 0
