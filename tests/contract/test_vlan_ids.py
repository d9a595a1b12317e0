"""The store contract for VLAN numbers (`vlan_id`): per owner, the lowest free, given at insert,
freed with the VLAN, distinct even when VLANs are made at once."""

from __future__ import annotations

import asyncio

from elastic_api.model.ids import new_id
from elastic_api.model.resource import IP, VLAN, Resource
from tests.contract.conftest import users


async def _vlan(store, owner: str) -> Resource:
    uuid = new_id()
    await store.insert_resource(Resource(uuid, VLAN, owner, created=1))
    found = await store.get_resource(owner, VLAN, uuid)
    assert found is not None
    return found


async def test_vlans_are_numbered_per_owner(contract_store):
    alice, bob = await users(contract_store)
    one, two, three = [await _vlan(contract_store, alice) for _ in range(3)]
    assert [v.vlan_id for v in (one, two, three)] == [1, 2, 3]
    assert (await _vlan(contract_store, bob)).vlan_id == 1  # another owner counts on its own
    await contract_store.insert_resource(Resource("192.0.2.9", IP, alice, created=1))
    ip = await contract_store.get_resource(alice, IP, "192.0.2.9")
    assert ip is not None and ip.vlan_id is None
    assert await contract_store.delete_resource(alice, VLAN, two.resource)
    assert (await _vlan(contract_store, alice)).vlan_id == 2  # the lowest free again
    assert (await _vlan(contract_store, alice)).vlan_id == 4
    listed = await contract_store.list_resources(alice, VLAN, None, None)
    assert sorted(v.vlan_id for v in listed if v.vlan_id is not None) == [1, 2, 3, 4]


async def test_vlans_made_at_once_get_distinct_numbers(contract_store):
    (alice,) = await users(contract_store, 1)
    made = await asyncio.gather(*(_vlan(contract_store, alice) for _ in range(6)))
    assert sorted(v.vlan_id or 0 for v in made) == [1, 2, 3, 4, 5, 6]
