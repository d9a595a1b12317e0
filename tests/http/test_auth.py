"""Basic credentials parsing: every malformed header is an AuthError, never anything else."""

from __future__ import annotations

import base64

import pytest
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
