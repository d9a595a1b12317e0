"""API tokens: long-lived random tokens stored as hashes (made by the operator's command line), and
short-lived login tokens signed with a server key (made by a login with the user's secret key).
Either names a Principal; a user's secret key is not a token."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from elastic_api.errors import ConfigError, Invalid, NotFound, Unauthenticated
from elastic_api.model.audit import Credential
from elastic_api.model.group import group_id
from elastic_api.model.ids import parse_id
from elastic_api.model.token import ApiToken, Principal
from elastic_api.once import create_once
from elastic_api.service.users import UserService
from elastic_api.store.base import GroupStore, TokenStore, UserStore

# 32 random bytes: 256 bits, url-safe base64 without padding (43 characters).
TOKEN_BYTES = 32
HINT = 6  # characters of a token kept in the clear, to tell tokens apart in a list
_SIGNED = re.compile(r"^([0-9a-f-]{36})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")
_RANDOM = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_KEY_FILE = 4096


def new_token() -> str:
    """A random token that never begins with `-`: one that did (1 in 64) was read by
    `elastic-api user token revoke TOKEN` as an option, not as the token to revoke."""
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if not token.startswith("-"):
            return token


class TokenUsers(TokenStore, UserStore, GroupStore, Protocol):
    """What tokens need of the store: tokens, and whether their user and group exist."""


def token_digest(token: str) -> bytes:
    # Tokens are 256 random bits made here, never chosen by a person: a fast hash is as strong
    # as a slow KDF (as for user secrets) and keeps every request's check cheap.
    return hashlib.sha256(token.encode()).digest()


class TokenService:
    def __init__(
        self,
        store: TokenUsers,
        users: UserService,
        key_path: Path,
        *,
        login_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.users = users
        self.key_path = key_path
        self.login_seconds = login_seconds
        self.clock = clock
        self._key: bytes | None = None
        self._key_lock = asyncio.Lock()

    # -- long-lived tokens (the operator's) -------------------------------------------------------
    async def create(self, user: str, group: str | None = None) -> str:
        """A new token for the user, confined to one of the user's groups when `group` is given."""
        canonical = parse_id(user)
        if canonical is None or await self.store.user_secret_hash(canonical) is None:
            raise NotFound(f"no such user: {user[:40]}")
        if group is not None:
            number = group_id(group)
            if number is None or not await self.store.group_exists(canonical, number):
                raise NotFound(f"user {canonical} has no group {group[:40]}")
        token = new_token()
        await self.store.insert_token(ApiToken(token_digest(token), canonical, group, time.time_ns(), token[:HINT]))
        return token

    async def list(self, user: str) -> list[ApiToken]:
        canonical = parse_id(user)
        if canonical is None or await self.store.user_secret_hash(canonical) is None:
            raise NotFound(f"no such user: {user[:40]}")
        return await self.store.list_tokens(canonical)

    async def revoke(self, token: str) -> None:
        if not await self.store.delete_token(token_digest(token.strip())):
            raise NotFound("no such token")

    # -- login tokens -------------------------------------------------------------------------------
    async def login(self, user: str, secret: bytes) -> tuple[str, int]:
        """A signed token for a user who proved their secret key, and when it expires (epoch s)."""
        canonical = await self.users.authenticate(user, secret)
        expires = int(self.clock()) + self.login_seconds
        return f"{canonical}.{expires}.{await self._sign(canonical, expires)}", expires

    async def _sign(self, user: str, expires: int) -> str:
        mac = hmac.new(await self._signing_key(), f"{user}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    # -- every request ------------------------------------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal a token names; one Unauthenticated for every wrong case (unknown,
        revoked, expired, malformed, or a user's secret key)."""
        token = token.strip()
        signed = _SIGNED.match(token)
        if signed is not None:
            user, expires = parse_id(signed.group(1)), int(signed.group(2))
            expected = await self._sign(signed.group(1), expires)
            # Users are never removed by this program, so a valid signature needs no store trip.
            if user is None or not hmac.compare_digest(expected, signed.group(3)) or expires <= self.clock():
                raise Unauthenticated("token expired or not valid: log in again")
            return Principal(user, credential=Credential.LOGIN_TOKEN)
        if _RANDOM.match(token):
            found = await self.store.get_token(token_digest(token))
            if found is not None:
                return Principal(found.owner, found.group)
        raise Unauthenticated("token not valid")

    # -- the signing key ----------------------------------------------------------------------------
    async def _signing_key(self) -> bytes:
        if self._key is None:
            async with self._key_lock:
                if self._key is None:
                    self._key = await asyncio.to_thread(self._load_or_create)
        return self._key

    def _load_or_create(self) -> bytes:
        try:
            fd = os.open(self.key_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            try:
                made = create_once(self.key_path, key.hex().encode() + b"\n", 0o600)
            except OSError as e:
                raise ConfigError(f"token key file {self.key_path} cannot be created: {e.strerror}") from None
            return key if made else self._load_or_create()  # another process made it first: use theirs
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
                raise ConfigError(f"token key file {self.key_path} must be a regular file readable by its owner only")
            text = os.read(fd, MAX_KEY_FILE)
        finally:
            os.close(fd)
        try:
            key = bytes.fromhex(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError, binascii.Error):
            key = b""
        if len(key) != 32:
            raise ConfigError(f"token key file {self.key_path} does not hold a key (64 hex digits)")
        return key


def parse_group_option(group: str | None) -> str | None:
    """`--group NAME` as given, checked for shape (whether the user has it is the store's call)."""
    if group is None:
        return None
    if group_id(group) is None:
        raise Invalid(f"group must be a group name like eg100001, not {group[:40]!r}")
    return group
