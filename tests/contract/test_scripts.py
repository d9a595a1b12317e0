"""The store contract for cloud scripts: per owner, numbered, changed field by field, limited."""

from __future__ import annotations

import asyncio

from elastic_api.errors import QuotaExceeded
from tests.contract.conftest import users


async def test_scripts(contract_store):
    alice, bob = await users(contract_store)
    first = await contract_store.insert_script(alice, "t", "#!/bin/sh\n", False, 5, limit=10)
    assert (first.owner, first.title, first.content, first.windows, first.created) == (
        alice,
        "t",
        "#!/bin/sh\n",
        False,
        5,
    )
    theirs = await contract_store.insert_script(bob, "t", "Write-Host", True, 6, limit=10)
    assert theirs.id > first.id and theirs.windows is True
    assert await contract_store.list_scripts(alice) == [first]
    assert await contract_store.get_script(alice, first.id) == first
    assert await contract_store.get_script(alice, theirs.id) is None
    assert await contract_store.update_script(alice, theirs.id, "mine", None, None) is None
    assert await contract_store.get_script(bob, theirs.id) == theirs
    changed = await contract_store.update_script(alice, first.id, None, "echo", True)
    assert changed is not None and (changed.title, changed.content, changed.windows) == ("t", "echo", True)
    assert await contract_store.update_script(alice, first.id, None, None, None) == changed
    assert await contract_store.get_script(alice, first.id) == changed
    assert not await contract_store.delete_script(alice, theirs.id)
    assert await contract_store.delete_script(alice, first.id)
    assert not await contract_store.delete_script(alice, first.id)
    assert await contract_store.list_scripts(alice) == []
    again = await contract_store.insert_script(alice, "t", "echo", False, 7, limit=10)
    assert again.id > theirs.id  # numbers are never reused


async def test_scripts_have_a_limit_per_user_even_at_once(contract_store):
    alice, bob = await users(contract_store)
    results = await asyncio.gather(
        *(contract_store.insert_script(alice, f"s{i}", "echo", False, i, limit=3) for i in range(6)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert len(await contract_store.list_scripts(alice)) == 3
    await contract_store.insert_script(bob, "s", "echo", False, 1, limit=3)
