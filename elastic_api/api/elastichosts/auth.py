"""HTTP Basic credentials: parsed defensively, since the header is whatever a client sends."""

from __future__ import annotations

import base64
import binascii

from collections.abc import Awaitable, Callable
from enum import Enum

from aiohttp import web

from elastic_api.errors import AuthError
from elastic_api.service.users import UserService

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
    """The BASIC policy: the user the request's credentials name, or Unauthenticated."""

    async def authenticate(request: web.Request) -> str:
        user, secret = parse_basic(request.headers.get("Authorization"))
        return await users.authenticate(user, secret)

    return authenticate
