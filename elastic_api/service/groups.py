"""A user's groups: sets of servers with notes and a password for a later sub-login (kept as a
salted scrypt hash: unlike secrets and tokens, a person chooses it)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from elastic_api.errors import Invalid, NotFound
from elastic_api.model.group import Group, group_id
from elastic_api.store.base import GroupStore

MAX_NOTES = 1024
MAX_PASSWORD = 256
# scrypt at N=2**14, r=8: 16 MiB and ~50 ms on one core, OWASP's floor for interactive logins.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024}
_SALT = 16


def hash_password(password: str, salt: bytes | None = None) -> bytes:
    salt = salt if salt is not None else secrets.token_bytes(_SALT)
    return salt + hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)


def check_password(password: str, stored: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, stored[:_SALT]), stored)


class GroupService:
    def __init__(self, store: GroupStore, *, max_per_user: int) -> None:
        self.store = store
        self.max_per_user = max_per_user

    async def create(self, owner: str, notes: str, password: str) -> Group:
        if len(notes) > MAX_NOTES or any(ord(c) < 32 and c not in "\t" for c in notes):
            raise Invalid(f"notes must be one line of at most {MAX_NOTES} characters")
        if not password or len(password) > MAX_PASSWORD:
            raise Invalid(f"password must be 1 to {MAX_PASSWORD} characters")
        digest = await asyncio.to_thread(hash_password, password)  # ~50 ms of CPU: off the loop
        return await self.store.insert_group(owner, notes, digest, time.time_ns(), self.max_per_user)

    async def list(self, owner: str) -> list[Group]:
        return await self.store.list_groups(owner)

    async def get(self, owner: str, id_: int) -> Group:
        found = await self.store.get_group(owner, id_)
        if found is None:
            raise NotFound(f"no such group: {id_}")
        return found

    async def by_name(self, owner: str, name: str) -> Group:
        number = group_id(name)
        found = await self.store.get_group(owner, number) if number is not None else None
        if found is None:
            raise NotFound(f"group not found: {name[:40]}")
        return found

    async def delete(self, owner: str, id_: int) -> None:
        if not await self.store.delete_group(owner, id_):
            raise NotFound(f"no such group: {id_}")
