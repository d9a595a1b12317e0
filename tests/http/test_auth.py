"""Basic credentials parsing: every malformed header is an AuthError, never anything else."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from elastic_api.errors import AuthError
from elastic_api.api.elastichosts.auth import parse_basic


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_good_header():
    assert parse_basic(basic(b"user:se:cret")) == ("user", b"se:cret")
    assert parse_basic("basic " + base64.b64encode(b"u:").decode()) == ("u", b"")


@pytest.mark.parametrize(
    "header", [None, "", "Basic", "Digest x", "Basic @@@", basic(b"nocolon"), basic("ü:x".encode()), "Basic " + "A" * 5]
)
def test_bad_headers(header):
    with pytest.raises(AuthError):
        parse_basic(header)


@given(st.text())
def test_any_text_is_parsed_or_refused_as_auth(header):
    try:
        user, secret = parse_basic(header)
    except AuthError:
        return
    assert isinstance(user, str) and isinstance(secret, bytes)


@given(st.binary())
def test_any_decoded_bytes_are_parsed_or_refused_as_auth(raw):
    try:
        parse_basic(basic(raw))
    except AuthError:
        pass


def _Request(authorization: str | None) -> web.Request:
    return make_mocked_request(
        "GET", "/drives/list", headers={} if authorization is None else {"Authorization": authorization}
    )


class _Counting:
    """The real store, counting the secret lookups that reach it."""

    def __init__(self, store):
        self.store, self.lookups = store, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def user_secret_hash(self, user):
        self.lookups += 1
        return await self.store.user_secret_hash(user)


async def test_a_verified_header_is_remembered_as_parsed_and_trusted_only_as_the_secret_is(store):
    from elastic_api.api.elastichosts.auth import basic as basic_policy
    from elastic_api.service.users import UserService

    now = [1000.0]
    counting = _Counting(store)
    users = UserService(counting, cache_seconds=60, cache_users=2, clock=lambda: now[0])
    policy = basic_policy(users)
    user, secret = await users.create()
    good = basic(f"{user}:{secret}".encode())
    for _ in range(3):
        assert await policy(_Request(good)) == user
    assert counting.lookups == 1
    # A wrong secret for the same user, a header for no user, no header: refused, every time.
    for header in (basic(f"{user}:{secret}x".encode()), basic(f"{user.upper()}:x".encode()), None, "Basic @@@"):
        for _ in range(2):
            with pytest.raises(AuthError):
                await policy(_Request(header))
    assert counting.lookups == 1 + 4
    assert await policy(_Request(good)) == user and counting.lookups == 5
    # The parsed header is no trust of its own: once the secret's memory expires, the store decides.
    now[0] += 60
    assert await policy(_Request(good)) == user and counting.lookups == 6
