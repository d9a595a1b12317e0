"""Quotas: each user's limits (configured defaults, own overrides) checked before anything is made."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from elastic_api.config import Config
from elastic_api.errors import MissingError
from elastic_api.model import quota as model
from elastic_api.model.ids import parse_id
from elastic_api.model.quota import Quota, Usage
from elastic_api.store import Store

log = logging.getLogger(__name__)


class QuotaService:
    """Admission through the store's quota holds: the check counts what the store holds plus
    what admitted commands, on any node, are still making (their holds), and an admitted
    command's hold lasts until it has made its change. The store runs a user's admissions one at
    a time (store/base.py hold_quota), so two concurrent creates cannot both see room for one,
    even on two nodes, and nothing is locked while a volume or a guest is being made: a slow
    encrypted create never holds up the user's other commands. (Between a change's commit and
    the end of its hold it is counted twice, which can only refuse, never overshoot.)"""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    async def limits(self, user: str) -> Quota:
        return self.config.quotas.with_overrides(await self.store.quota_overrides(user))

    @asynccontextmanager
    async def _admit(self, user: str, kind: str, adding: Usage) -> AsyncIterator[None]:
        if not any(getattr(adding, key) > 0 for key in model.KEYS):  # nothing grows: no lock, no queries
            yield
            return
        now = time.time_ns()
        hold = await self.store.hold_quota(
            user, adding, self.config.quotas, now, now + self.config.quota_hold_seconds * 1_000_000_000
        )
        try:
            yield
        finally:
            # Shielded: a cancelled command still gives its hold back (a hold the store could not
            # drop only refuses more than it should, until it runs out).
            try:
                await asyncio.shield(self.store.release_quota(hold))
            except Exception:
                log.exception("quota hold %d of user %s (%s) not released: it lapses by itself", hold, user, kind)

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
