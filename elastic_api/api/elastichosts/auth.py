"""HTTP Basic credentials: parsed defensively, since the header is whatever a client sends."""

from __future__ import annotations

import base64
import binascii

from collections.abc import Awaitable, Callable
from enum import Enum

from aiohttp import web

from elastic_api.errors import AuthError
from elastic_api.service.users import UserService, hash_secret

REALM = 'Basic realm="elastic-api"'


def parse_basic(header: str | None) -> tuple[str, bytes]:
    """(user, secret bytes) from an Authorization header; AuthError for every malformed kind."""
    if not header:
        raise AuthError("authentication required: HTTP Basic with your user UUID and secret key")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthError("authentication must be HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthError("malformed Basic credentials") from None
    user, colon, secret = decoded.partition(b":")
    if not colon:
        raise AuthError("malformed Basic credentials")
    try:
        return user.decode("ascii"), secret
    except UnicodeDecodeError:
        raise AuthError("wrong user or secret") from None


class Policy(Enum):
    """Who may call a route of this dialect."""

    BASIC = "basic"  # a user, by HTTP Basic with its UUID and secret key


BASIC = Policy.BASIC


def basic(users: UserService) -> Callable[[web.Request], Awaitable[str]]:
    """The BASIC policy: the user the request's credentials name, or Unauthenticated.

    A header whose credentials verified is remembered as what parsing it gives (the canonical
    user and the secret's hash), so a signed-in client's next requests skip the base64 and the
    hash; whether that user and hash are still trusted is asked of the UserService every time,
    exactly as `authenticate` asks it. At most auth_cache_users headers, oldest dropped first."""
    parsed: dict[str, tuple[str, bytes]] = {}

    async def authenticate(request: web.Request) -> str:
        header = request.headers.get("Authorization")
        if header is not None:
            known = parsed.get(header)
            if known is not None and users.remembered(*known):
                return known[0]
        user, secret = parse_basic(header)
        canonical = await users.authenticate(user, secret)
        if header is not None and users.cache_seconds > 0:
            parsed.pop(header, None)
            while len(parsed) >= users.cache_users:
                del parsed[next(iter(parsed))]
            parsed[header] = (canonical, hash_secret(secret))
        return canonical

    return authenticate
