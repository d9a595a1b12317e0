"""Quotas: each user's limits (configured defaults, own overrides) checked before anything is made."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from elastic_api.config import Config
from elastic_api.errors import BillingError, MissingError
from elastic_api.model import quota as model
from elastic_api.model.ids import parse_id
from elastic_api.model.quota import Quota, Usage
from elastic_api.service.locks import LockTable
from elastic_api.store import Store


class QuotaService:
    """Admission under one lock per user and kind (drives, servers, IPs): the check counts what
    the store holds plus what admitted commands are still making, and an admitted command counts
    as pending until it has made its change. So two concurrent creates cannot both see room for
    one, and no lock is held while a volume or a guest is being made: a slow encrypted create
    never holds up the user's other commands. (Between a change's commit and the end of its
    pending count it is counted twice, which can only refuse, never overshoot.)"""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.locks = LockTable()
        self._pending: dict[str, Usage] = {}

    async def limits(self, user: str) -> Quota:
        return self.config.quotas.with_overrides(await self.store.quota_overrides(user))

    @asynccontextmanager
    async def _admit(self, user: str, kind: str, adding: Usage) -> AsyncIterator[None]:
        if not any(getattr(adding, key) > 0 for key in model.KEYS):  # nothing grows: no lock, no queries
            yield
            return
        async with self.locks.hold(f"{user} {kind}"):
            # Pending is read before the usage: a block that commits and ends in between is then
            # counted twice (refusing, never overshooting).
            pending = self._pending.get(user, Usage())
            overrides, usage = await self.store.quota_state(user)
            limits = self.config.quotas.with_overrides(overrides)
            message = model.exceeded(limits, model.combined(usage, pending), adding)
            if message:
                raise BillingError(message)
            # Added to the count as it is now, not to the copy read before the awaits: blocks that
            # ended meanwhile (and other kinds' admissions) changed it, and writing the stale copy
            # back would undo their changes for good.
            self._pending[user] = model.combined(self._pending.get(user, Usage()), adding)
        try:
            yield
        finally:
            left = model.combined(self._pending[user], adding, -1)
            if any(getattr(left, key) for key in model.KEYS):
                self._pending[user] = left
            else:
                del self._pending[user]

    def drives(self, user: str, *, count: int = 0, size: int = 0) -> AbstractAsyncContextManager[None]:
        """Admit `count` more drives and `size` more drive bytes for the block that makes them."""
        return self._admit(user, "drives", Usage(drives=count, drive_bytes=size))

    def servers(self, user: str, *, count: int = 0, cpu: int = 0, mem: int = 0) -> AbstractAsyncContextManager[None]:
        """Admit `count` more servers, or `cpu` MHz and `mem` MB more of active servers."""
        return self._admit(user, "servers", Usage(servers=count, cpu=cpu, mem=mem))

    def ips(self, user: str, *, count: int = 1) -> AbstractAsyncContextManager[None]:
        """Admit `count` more IP resources."""
        return self._admit(user, "ips", Usage(ips=count))

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
