"""QuotaService over a real SQLite store: limits from config and overrides, usage, the IP check."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from elastic_api.config import Config
from elastic_api.errors import BillingError, MissingError, UsageError
from elastic_api.model.quota import Quota, Usage
from elastic_api.service.quotas import QuotaService
from elastic_api.service.users import UserService


@pytest.fixture
async def quotas(tmp_path, store):
    return QuotaService(Config(data_dir=tmp_path, quotas=Quota(drives=2, ips=3, cpu=1000)), store)


async def admit_ips(quotas, user, count):
    async with quotas.ips(user, count=count):
        pass


async def test_ips_admitted_up_to_the_limit(store, quotas):
    user, _ = await UserService(store).create()
    for count in (1, 3):
        await admit_ips(quotas, user, count)
    with pytest.raises(BillingError, match="quota exceeded: ips 4 of 3"):
        await admit_ips(quotas, user, 4)
    await quotas.set(user, ["ips=5"])
    await admit_ips(quotas, user, 5)
    with pytest.raises(BillingError, match="ips 6 of 5"):
        await admit_ips(quotas, user, 6)
    await quotas.set(user, ["ips=unlimited"])
    await admit_ips(quotas, user, 10**6)
    await quotas.set(user, ["ips=0"])
    with pytest.raises(BillingError, match="ips 1 of 0"):
        await admit_ips(quotas, user, 1)
    await quotas.set(user, ["ips=default"])
    with pytest.raises(BillingError, match="ips 4 of 3"):
        await admit_ips(quotas, user, 4)


async def test_overrides_are_per_user(store, quotas):
    alice, _ = await UserService(store).create()
    bob, _ = await UserService(store).create()
    shown = await quotas.set(alice, ["drives=7", "drive_bytes=1G"])
    assert "drives 7 0 user" in shown and "drive_bytes 1073741824 0 user" in shown
    assert (await quotas.limits(alice)).drives == 7
    assert (await quotas.limits(bob)).drives == 2
    assert "drives 2 0 default" in await quotas.show(bob)


async def test_unknown_user_and_bad_words(store, quotas):
    with pytest.raises(MissingError):
        await quotas.set(str(uuid.uuid4()), ["drives=1"])
    with pytest.raises(MissingError):
        await quotas.show("not-a-uuid")
    user, _ = await UserService(store).create()
    with pytest.raises(UsageError):
        await quotas.set(user, ["colour=red"])
    assert await store.quota_overrides(user) == {}


async def test_the_lock_admits_one_at_a_time(store, quotas):
    """Two admissions for the last drive slot: the second is checked only after the first's
    change is in the store, so it sees no room."""
    user, _ = await UserService(store).create()
    await store.set_quota_overrides(user, {"drives": 1}, [])
    admitted = []

    async def create(name):
        try:
            async with quotas.drives(user, count=1, size=1):
                await asyncio.sleep(0.05)  # the other create runs meanwhile
                admitted.append(name)
                # What the real create does inside the block: the row lands in the store.
                from elastic_api.model.drive import DriveSpec, new_drive

                drive = new_drive(
                    str(uuid.uuid4()), user, DriveSpec(name=name, size=1), default_format="raw", created=len(admitted)
                )
                await store.insert_drive(drive)
        except BillingError:
            pass

    await asyncio.gather(create("a"), create("b"))
    assert len(admitted) == 1 and (await store.usage(user)).drives == 1


async def test_usage_counts_only_what_the_user_owns(store):
    alice, _ = await UserService(store).create()
    assert await store.usage(alice) == Usage()


class GatedStore:
    """The real store, except that hold_quota() can be held until the test lets it go on."""

    def __init__(self, store):
        self.store = store
        self.held = False
        self.asked = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def hold_quota(self, *args):
        if self.held:
            self.asked.set()
            await self.go.wait()
        return await self.store.hold_quota(*args)


async def test_a_block_ending_during_another_check_is_not_lost(tmp_path, store):
    """A create's block ends while the next create's check waits on the store: the count of
    pending changes must end at zero, not keep the finished one for good."""
    gated = GatedStore(store)
    quotas = QuotaService(Config(data_dir=tmp_path, quotas=Quota(drives=2)), gated)
    user, _ = await UserService(store).create()
    first_in, first_may_end = asyncio.Event(), asyncio.Event()

    async def first():
        async with quotas.drives(user, count=1):
            first_in.set()
            await first_may_end.wait()

    a = asyncio.create_task(first())
    await first_in.wait()
    gated.held = True
    b = asyncio.create_task(admit_drives(quotas, user, 1))
    await gated.asked.wait()
    first_may_end.set()
    await a
    gated.held = False
    gated.go.set()
    async with asyncio.timeout(10):
        await b
    await admit_drives(quotas, user, 2)  # nothing is held or pending: both slots are free


async def admit_drives(quotas, user, count):
    async with quotas.drives(user, count=count):
        pass
