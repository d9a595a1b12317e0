"""The store contract for the ECS rows: API tokens, SSH keys, groups, image numbers."""

from __future__ import annotations

import asyncio

import pytest

from elastic_api.errors import QuotaExceeded
from elastic_api.model.group import group_name
from elastic_api.model.ids import new_id
from elastic_api.model.image import StandardImage
from elastic_api.model.token import ApiToken
from tests.contract.conftest import users


async def test_tokens(contract_store):
    alice, bob = await users(contract_store)
    one = ApiToken(b"1" * 32, alice, None, 1, "abcdef")
    two = ApiToken(b"2" * 32, alice, "eg100001", 2, "ghijkl")
    await contract_store.insert_token(one)
    await contract_store.insert_token(two)
    assert await contract_store.get_token(b"1" * 32) == one
    assert await contract_store.get_token(b"3" * 32) is None
    assert await contract_store.list_tokens(alice) == [one, two]
    assert await contract_store.list_tokens(bob) == []
    assert await contract_store.delete_token(b"1" * 32)
    assert not await contract_store.delete_token(b"1" * 32)
    assert await contract_store.list_tokens(alice) == [two]


async def test_a_token_needs_a_user(contract_store):
    with pytest.raises(Exception):  # the engine's integrity error
        await contract_store.insert_token(ApiToken(b"1" * 32, new_id(), None, 1, "abcdef"))


async def test_ssh_keys(contract_store):
    alice, bob = await users(contract_store)
    first = await contract_store.insert_ssh_key(alice, "work", "ssh-ed25519 AAAA", 5, limit=10)
    assert first is not None
    assert (first.owner, first.label, first.key, first.created) == (alice, "work", "ssh-ed25519 AAAA", 5)
    assert await contract_store.insert_ssh_key(alice, "work", "ssh-rsa BBBB", 6, limit=10) is None
    theirs = await contract_store.insert_ssh_key(bob, "work", "ssh-rsa BBBB", 6, limit=10)
    assert theirs is not None and theirs.id > first.id
    assert await contract_store.list_ssh_keys(alice) == [first]
    assert await contract_store.get_ssh_key(alice, first.id) == first
    assert await contract_store.get_ssh_key(alice, theirs.id) is None
    assert not await contract_store.delete_ssh_key(alice, theirs.id)
    assert await contract_store.get_ssh_key(bob, theirs.id) == theirs
    assert await contract_store.delete_ssh_key(alice, first.id)
    assert await contract_store.list_ssh_keys(alice) == []
    again = await contract_store.insert_ssh_key(alice, "work", "ssh-ed25519 AAAA", 7, limit=10)
    assert again is not None and again.id > theirs.id  # numbers are never reused


async def test_ssh_keys_have_a_limit_per_user_even_at_once(contract_store):
    alice, bob = await users(contract_store)
    results = await asyncio.gather(
        *(contract_store.insert_ssh_key(alice, f"k{i}", "k", i, limit=3) for i in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert len(await contract_store.list_ssh_keys(alice)) == 3
    assert await contract_store.insert_ssh_key(bob, "k", "k", 1, limit=3) is not None


async def test_groups(contract_store):
    alice, bob = await users(contract_store)
    first = await contract_store.insert_group(alice, "notes", b"hash", 3, limit=5)
    assert (first.owner, first.notes, first.enabled, first.password_hash, first.created) == (
        alice,
        "notes",
        True,
        b"hash",
        3,
    )
    assert first.name == group_name(first.id)
    theirs = await contract_store.insert_group(bob, "", b"h", 4, limit=5)
    assert await contract_store.list_groups(alice) == [first]
    assert await contract_store.get_group(alice, first.id) == first
    assert await contract_store.get_group(alice, theirs.id) is None
    assert await contract_store.group_exists(alice, first.id)
    assert not await contract_store.group_exists(alice, theirs.id)
    assert not await contract_store.delete_group(alice, theirs.id)
    await contract_store.insert_token(ApiToken(b"1" * 32, alice, first.name, 1, "abcdef"))
    await contract_store.insert_token(ApiToken(b"2" * 32, alice, None, 1, "ghijkl"))
    assert await contract_store.delete_group(alice, first.id)
    # The tokens confined to the group went with it; the others stay.
    assert [t.digest for t in await contract_store.list_tokens(alice)] == [b"2" * 32]
    again = await contract_store.insert_group(alice, "", b"h", 5, limit=5)
    assert again.id > theirs.id
    for i in range(4):
        await contract_store.insert_group(alice, "", b"h", 6 + i, limit=5)
    with pytest.raises(QuotaExceeded):
        await contract_store.insert_group(alice, "", b"h", 10, limit=5)


async def test_image_numbers(contract_store):
    a, b, c = (StandardImage(new_id(), name, 512, created) for name, created in (("A", 3), ("B", 1), ("C", 2)))
    for image in (a, b):
        await contract_store.insert_image(image)
    numbered = await contract_store.numbered_images()
    assert [n.image for n in numbered] == [a, b]  # in the order they were added
    assert numbered[1].number > numbered[0].number
    await contract_store.delete_image(b.image)
    await contract_store.insert_image(c)
    again = await contract_store.numbered_images()
    assert [n.image for n in again] == [a, c]
    assert again[0].number == numbered[0].number and again[1].number > numbered[1].number
