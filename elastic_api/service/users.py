"""Users: creation with a random secret, and authentication against its stored hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from elastic_api.errors import AuthError, UsageError
from elastic_api.model.ids import new_id, parse_id
from elastic_api.store import Store


def hash_secret(secret: bytes) -> bytes:
    # Secrets are 240 random bits made here, never user-chosen passwords, so a fast hash is as
    # strong as a slow KDF and keeps authentication cheap on every request.
    return hashlib.sha256(secret).digest()


class UserService:
    """Users and their secrets. A secret that verified against the store is remembered (its
    hash, per user) for `cache_seconds`, so a signed-in user's requests skip the store's thread;
    anything that does not match what is remembered, an unknown user or a wrong secret, is
    checked against the store every time, so a new user is known at once and nothing is
    refused from memory."""

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = 0,
        cache_users: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.cache_users = cache_users
        self.clock = clock
        self._verified: dict[str, tuple[bytes, float]] = {}  # user: (secret hash, trusted until)

    async def create(self, name: str = "") -> tuple[str, str]:
        if len(name) > 256 or "\n" in name:
            raise UsageError("user name must be one line of at most 256 characters")
        user, secret = new_id(), secrets.token_urlsafe(30)
        await self.store.create_user(user, name, hash_secret(secret.encode()), time.time_ns())
        return user, secret

    async def authenticate(self, user: str, secret: bytes) -> str:
        """The canonical user UUID when the secret is right; one AuthError for every wrong case."""
        canonical = parse_id(user)
        digest = hash_secret(secret)
        if canonical is not None and self.remembered(canonical, digest):
            return canonical
        stored = await self.store.user_secret_hash(canonical) if canonical else None
        # Compare even when the user is unknown, so timing does not tell which part was wrong.
        expected = stored if stored is not None else b"\0" * 32
        if not hmac.compare_digest(digest, expected) or stored is None or canonical is None:
            raise AuthError("wrong user or secret")
        self._remember(canonical, stored)
        return canonical

    def remembered(self, user: str, digest: bytes) -> bool:
        """The canonical user's secret, by its hash, verified within cache_seconds (what
        `authenticate` trusts without the store)."""
        entry = self._verified.get(user)
        return entry is not None and hmac.compare_digest(digest, entry[0]) and self.clock() < entry[1]

    def _remember(self, user: str, stored: bytes) -> None:
        if self.cache_seconds <= 0:
            return
        self._verified.pop(user, None)  # re-inserted last: the dict's order is oldest first
        while len(self._verified) >= self.cache_users:
            del self._verified[next(iter(self._verified))]
        self._verified[user] = (stored, self.clock() + self.cache_seconds)
