"""A user's SSH public keys: validated, labelled uniquely, numbered."""

from __future__ import annotations

import time
from elastic_api.errors import Busy, NotFound
from elastic_api.model.sshkey import SshKey, parse_label, parse_public_key
from elastic_api.store.base import SshKeyStore


class SshKeyService:
    def __init__(self, store: SshKeyStore, *, max_per_user: int) -> None:
        self.store = store
        self.max_per_user = max_per_user

    async def add(self, owner: str, label: str, key: str) -> SshKey:
        label, key = parse_label(label), parse_public_key(key)
        added = await self.store.insert_ssh_key(owner, label, key, time.time_ns(), self.max_per_user)
        if added is None:
            raise Busy(f"you already have a key labelled {label[:40]!r}")
        return added

    async def list(self, owner: str) -> list[SshKey]:
        return await self.store.list_ssh_keys(owner)

    async def get(self, owner: str, id_: int) -> SshKey:
        found = await self.store.get_ssh_key(owner, id_)
        if found is None:
            raise NotFound(f"no such key: {id_}")
        return found

    async def by_label(self, owner: str, label: str) -> SshKey | None:
        return next((key for key in await self.list(owner) if key.label == label), None)

    async def delete(self, owner: str, id_: int) -> None:
        if not await self.store.delete_ssh_key(owner, id_):
            raise NotFound(f"no such key: {id_}")
