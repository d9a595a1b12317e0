"""Store contract: users, quotas, drives and standard images (jobs: test_jobs.py)."""

from __future__ import annotations

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.ids import ALL_USERS, new_id
from elastic_api.model.image import StandardImage
from elastic_api.model.quota import Usage
from tests.contract.conftest import active_server, drive, users


async def test_users_and_their_secret_hashes(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    assert await store.user_secret_hash(alice) == b"h" * 32
    assert await store.user_secret_hash(new_id()) is None


async def test_quota_overrides_are_per_user_and_cleared_back_to_the_default(contract_store):
    store = contract_store
    alice, bob = await users(store)
    assert await store.quota_overrides(alice) == {}
    assert await store.set_quota_overrides(alice, {"drives": 3, "cpu": None}, [])
    assert await store.quota_overrides(alice) == {"drives": 3, "cpu": None}  # None: unlimited
    assert await store.quota_overrides(bob) == {}
    assert await store.set_quota_overrides(alice, {"servers": 1}, ["drives"])
    assert await store.quota_overrides(alice) == {"cpu": None, "servers": 1}
    assert not await store.set_quota_overrides(new_id(), {"drives": 1}, [])


async def test_usage_counts_what_a_user_holds(contract_store):
    store = contract_store
    alice, bob = await users(store)
    await store.insert_drive(drive(alice, 1))
    await store.insert_drive(drive(alice, 2))
    await store.insert_drive(drive(bob, 3))
    await active_server(store, alice)
    usage = await store.usage(alice)
    assert (usage.drives, usage.drive_bytes, usage.servers, usage.cpu, usage.mem) == (2, 2048, 1, 1000, 64)
    assert await store.quota_state(bob) == ({}, Usage(drive_bytes=1024, drives=1))


async def test_every_drive_query_is_scoped_to_the_user(contract_store):
    store = contract_store
    alice, bob = await users(store)
    mine = drive(alice, 1, tags=("t",), user_keys={"user:x": "y"})
    await store.insert_drive(mine)
    assert (await store.get_drive(alice, mine.drive)) == mine
    assert await store.get_drive(bob, mine.drive) is None
    assert await store.list_drives(bob, None, None) == []
    assert not await store.update_drive(bob, mine)
    assert not await store.delete_drive(bob, mine.drive)
    await store.count_drive_io(bob, mine.drive, read_bytes=10, read_requests=1)
    assert (await store.get_drive(alice, mine.drive)).read_bytes == 0
    await store.count_drive_io(alice, mine.drive, write_bytes=10, write_requests=1)
    assert (await store.get_drive(alice, mine.drive)).write_bytes == 10


async def test_readers_make_a_drive_visible_not_writable(contract_store):
    store = contract_store
    alice, bob = await users(store)
    shared = drive(alice, 1, readers=(bob,))
    public = drive(alice, 2, readers=(ALL_USERS,))
    await store.insert_drive(shared)
    await store.insert_drive(public)
    stranger = new_id()
    assert [d.drive for d in await store.list_drives(bob, None, None)] == [shared.drive, public.drive]
    assert [d.drive for d in await store.list_drives(stranger, None, None)] == [public.drive]
    assert not await store.update_drive(bob, shared)
    assert not await store.delete_drive(bob, shared.drive)
    assert await store.delete_drive(alice, shared.drive)
    assert [d.drive for d in await store.list_drives(bob, None, None)] == [public.drive]


async def test_drive_pages_by_creation_then_id(contract_store):
    store = contract_store
    (alice,) = await users(store, 1)
    drives = [drive(alice, created) for created in (5, 1, 5, 3)]
    for d in drives:
        await store.insert_drive(d)
    order = sorted(drives, key=lambda d: (d.created, d.drive))
    assert await store.list_drives(alice, None, None) == order
    assert await store.list_drives(alice, 2, order[1].drive) == order[2:4]
    assert await store.list_drive_ids(alice, None, None) == [d.drive for d in order]
    assert await store.list_drive_ids(alice, 2, order[1].drive) == [d.drive for d in order[2:4]]
    for listing in (store.list_drives, store.list_drive_ids):
        with pytest.raises(UsageError):
            await listing(alice, 2, new_id())
    assert await store.all_drive_ids() == {d.drive for d in drives}


async def test_wrapped_keys_are_kept_and_one_is_found_for_the_start_up_check(contract_store):
    store = contract_store
    alice, _ = await users(store)
    assert await store.some_wrapped_key() is None
    plain = drive(alice, 1)
    await store.insert_drive(plain)
    assert await store.some_wrapped_key() is None and (await store.get_drive(alice, plain.drive)).wrapped_key is None
    secret = drive(alice, 2, encryption="aes-xts-plain", format="qcow2", wrapped_key=b"\x01wrapped")
    await store.insert_drive(secret)
    found = await store.get_drive(alice, secret.drive)
    assert found.wrapped_key == b"\x01wrapped" and found.encrypted
    assert await store.some_wrapped_key() == (secret.drive, b"\x01wrapped")
    await store.update_drive(alice, found)  # set never touches the key
    assert (await store.get_drive(alice, secret.drive)).wrapped_key == b"\x01wrapped"


async def test_standard_images_are_one_public_library(contract_store):
    store = contract_store
    images = [StandardImage(new_id(), f"image {n}", 1024 * n, n) for n in (2, 1, 3)]
    for image in images:
        await store.insert_image(image)
    assert await store.get_image(images[0].image) == images[0]
    assert await store.get_image(new_id()) is None
    order = sorted(images, key=lambda i: (i.created, i.image))
    assert await store.list_images(None, None) == order
    assert await store.list_images(1, order[0].image) == order[1:2]
    assert await store.delete_image(images[0].image) and not await store.delete_image(images[0].image)


async def test_batched_io_counts_add_up_and_skip_missing_drives(contract_store):
    import asyncio

    from elastic_api.model.drive import IoCounts

    store = contract_store
    (alice,) = await users(store, 1)
    one, two = drive(alice, 1), drive(alice, 2)
    await store.insert_drive(one)
    await store.insert_drive(two)
    gone = new_id()
    batch = {one.drive: IoCounts(4096, 1, 0, 0), two.drive: IoCounts(0, 0, 10, 2), gone: IoCounts(1, 1, 1, 1)}
    await store.add_drive_io(batch)
    await store.add_drive_io({})
    # Batches stored side by side all add up.
    await asyncio.gather(*(store.add_drive_io({one.drive: IoCounts(1, 1, 1, 1)}) for _ in range(10)))
    first, second = await store.get_drive(alice, one.drive), await store.get_drive(alice, two.drive)
    assert (first.read_bytes, first.read_requests, first.write_bytes, first.write_requests) == (4106, 11, 10, 10)
    assert (second.read_bytes, second.read_requests, second.write_bytes, second.write_requests) == (0, 0, 10, 2)
    assert await store.get_drive(alice, gone) is None
