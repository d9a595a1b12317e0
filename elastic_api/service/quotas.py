"""Quotas: each user's limits (configured defaults, own overrides) checked before anything is made."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from elastic_api.config import Config
from elastic_api.errors import BillingError, MissingError
from elastic_api.model import quota as model
from elastic_api.model.ids import parse_id
from elastic_api.model.quota import Quota, Usage
from elastic_api.service.locks import LockTable
from elastic_api.store import Store


class QuotaService:
    """A check and the change it admits happen under one lock per user and kind (drives,
    servers), so two concurrent creates cannot both see room for one. The lock is only ever
    taken innermost (inside a drive's or server's own lock, never around one), so it cannot
    deadlock, and drives and servers of one user do not wait for each other."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.locks = LockTable()

    async def limits(self, user: str) -> Quota:
        return self.config.quotas.with_overrides(await self.store.quota_overrides(user))

    async def check(self, user: str, adding: Usage) -> None:
        """BillingError naming the limit when the user's usage plus `adding` would pass it."""
        message = model.exceeded(await self.limits(user), await self.store.usage(user), adding)
        if message:
            raise BillingError(message)

    @asynccontextmanager
    async def drives(self, user: str, *, count: int = 0, size: int = 0) -> AsyncIterator[None]:
        """Admit `count` more drives and `size` more drive bytes; the block makes them real (in
        the store) while no other drive change of this user can be checked."""
        if count <= 0 and size <= 0:  # nothing grows: no lock, no queries
            yield
            return
        async with self.locks.hold(f"{user} drives"):
            await self.check(user, Usage(drives=count, drive_bytes=size))
            yield

    @asynccontextmanager
    async def servers(self, user: str, *, count: int = 0, cpu: int = 0, mem: int = 0) -> AsyncIterator[None]:
        """Admit `count` more servers, or `cpu` MHz and `mem` MB more of active servers."""
        if count <= 0 and cpu <= 0 and mem <= 0:
            yield
            return
        async with self.locks.hold(f"{user} servers"):
            await self.check(user, Usage(servers=count, cpu=cpu, mem=mem))
            yield

    @asynccontextmanager
    async def ips(self, user: str, *, count: int = 1) -> AsyncIterator[None]:
        """Admit `count` more IP resources."""
        async with self.locks.hold(f"{user} ips"):
            await self.check(user, Usage(ips=count))
            yield

    # -- the operator's command line -------------------------------------------------------------
    async def show(self, user_id: str) -> list[str]:
        """`KEY LIMIT USED SOURCE` lines for a user (see model.quota.render)."""
        user = await self._user(user_id)
        overrides = await self.store.quota_overrides(user)
        return model.render(self.config.quotas.with_overrides(overrides), await self.store.usage(user), overrides)

    async def set(self, user_id: str, words: Sequence[str]) -> list[str]:
        """Apply `key=value` words (`unlimited`, or `default` to follow the config again)."""
        user = await self._user(user_id)
        assignments = model.parse_assignments(words)
        values = {k: v for k, v in assignments.items() if v != model.DEFAULT and not isinstance(v, str)}
        cleared = [k for k, v in assignments.items() if v == model.DEFAULT]
        if not await self.store.set_quota_overrides(user, values, cleared):
            raise MissingError(f"no such user: {user_id[:40]}")
        return await self.show(user)

    async def _user(self, user_id: str) -> str:
        user = parse_id(user_id)
        if user is None or await self.store.user_secret_hash(user) is None:
            raise MissingError(f"no such user: {user_id[:40]}")
        return user
