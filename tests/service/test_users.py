"""UserService over a real SQLite store: authentication, and the memory of verified secrets."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid

import pytest

from elastic_api.errors import AuthError
from elastic_api.service.users import UserService


class CountingStore:
    """The real store, counting the secret lookups that reach it."""

    def __init__(self, store):
        self.store = store
        self.lookups = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def user_secret_hash(self, user):
        self.lookups += 1
        return await self.store.user_secret_hash(user)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def counting(store):
    return CountingStore(store)


@pytest.fixture
def clock():
    return Clock()


def service(counting, clock, *, seconds=60, users=100):
    return UserService(counting, cache_seconds=seconds, cache_users=users, clock=clock)


async def test_a_verified_secret_is_not_read_again_until_it_expires(counting, clock):
    users = service(counting, clock)
    user, secret = await users.create()
    for _ in range(3):
        assert await users.authenticate(user.upper(), secret.encode()) == user
    assert counting.lookups == 1
    clock.now += 60
    assert await users.authenticate(user, secret.encode()) == user
    assert counting.lookups == 2


async def test_wrong_secrets_and_unknown_users_always_reach_the_store(counting, clock):
    users = service(counting, clock)
    user, secret = await users.create()
    await users.authenticate(user, secret.encode())
    for _ in range(2):
        with pytest.raises(AuthError, match="wrong user or secret"):
            await users.authenticate(user, secret.encode() + b"x")
        with pytest.raises(AuthError, match="wrong user or secret"):
            await users.authenticate(str(uuid.uuid4()), secret.encode())
    assert counting.lookups == 1 + 4
    with pytest.raises(AuthError):
        await users.authenticate("not-a-uuid", b"")
    assert await users.authenticate(user, secret.encode()) == user  # still remembered
    assert counting.lookups == 5


async def test_a_user_removed_by_hand_is_refused_once_the_memory_expires(counting, clock, store):
    users = service(counting, clock, seconds=5)
    user, secret = await users.create()
    await users.authenticate(user, secret.encode())
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:  # an operator's own sqlite3 session
        db.execute("DELETE FROM users WHERE id = ?", (user,))
    clock.now += 4
    assert await users.authenticate(user, secret.encode()) == user
    clock.now += 1
    with pytest.raises(AuthError):
        await users.authenticate(user, secret.encode())
    with pytest.raises(AuthError):  # a refusal is not remembered either way
        await users.authenticate(user, secret.encode())


async def test_the_memory_is_bounded_and_forgets_the_oldest(counting, clock):
    users = service(counting, clock, users=2)
    made = [await users.create() for _ in range(3)]
    for user, secret in made:
        await users.authenticate(user, secret.encode())
    assert counting.lookups == 3
    assert len(users._verified) == 2
    await users.authenticate(*_args(made[2]))
    await users.authenticate(*_args(made[1]))
    assert counting.lookups == 3
    await users.authenticate(*_args(made[0]))  # forgotten: read again, and now the newest
    assert counting.lookups == 4
    assert list(users._verified) == [made[2][0], made[0][0]]


async def test_no_memory_when_cache_seconds_is_zero(counting, clock):
    users = service(counting, clock, seconds=0)
    user, secret = await users.create()
    await asyncio.gather(*(users.authenticate(user, secret.encode()) for _ in range(3)))
    assert counting.lookups == 3
    assert users._verified == {}


def _args(made):
    user, secret = made
    return user, secret.encode()
