"""Users: creation with a random secret, and authentication against its stored hash."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from elastic_api.errors import AuthError, UsageError
from elastic_api.model.ids import new_id, parse_id
from elastic_api.store import Store


def hash_secret(secret: bytes) -> bytes:
    # Secrets are 240 random bits made here, never user-chosen passwords, so a fast hash is as
    # strong as a slow KDF and keeps authentication cheap on every request.
    return hashlib.sha256(secret).digest()


class UserService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, name: str = "") -> tuple[str, str]:
        if len(name) > 256 or "\n" in name:
            raise UsageError("user name must be one line of at most 256 characters")
        user, secret = new_id(), secrets.token_urlsafe(30)
        await self.store.create_user(user, name, hash_secret(secret.encode()), time.time_ns())
        return user, secret

    async def authenticate(self, user: str, secret: bytes) -> str:
        """The canonical user UUID when the secret is right; one AuthError for every wrong case."""
        canonical = parse_id(user)
        stored = await self.store.user_secret_hash(canonical) if canonical else None
        # Compare even when the user is unknown, so timing does not tell which part was wrong.
        expected = stored if stored is not None else b"\0" * 32
        if not hmac.compare_digest(hash_secret(secret), expected) or stored is None or canonical is None:
            raise AuthError("wrong user or secret")
        return canonical
