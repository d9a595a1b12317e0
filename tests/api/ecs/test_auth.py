"""Tokens and the login: the three ways a token comes, what is not a token, expiry, revocation."""

from __future__ import annotations

import time

import aiohttp
import pytest

from elastic_api.app import SERVICES
from tests.api.ecs.conftest import assert_error


@pytest.mark.parametrize("header", ["X-APITOKEN", "Bearer", "bare"])
async def test_a_token_in_each_header(ecs_alice, header):
    headers = (
        {"X-APITOKEN": ecs_alice.token}
        if header == "X-APITOKEN"
        else {"Authorization": f"Bearer {ecs_alice.token}" if header == "Bearer" else ecs_alice.token}
    )
    answer = await ecs_alice.get("/account", token=False, headers=headers)
    assert answer.status == 200, answer.text
    assert answer.json["username"] == ecs_alice.user and answer.json["status"] == "ok"


async def test_bearer_is_case_insensitive(ecs_alice):
    answer = await ecs_alice.get("/account", token=False, headers={"Authorization": f"bearer  {ecs_alice.token}"})
    assert answer.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-APITOKEN": ""},
        {"X-APITOKEN": "x" * 43},  # the shape of a token, but none was made
        {"X-APITOKEN": "not a token at all"},
        {"X-APITOKEN": "a" * 2000},
        {"Authorization": "Bearer "},
        {"Authorization": "Digest abc"},
    ],
)
async def test_no_token_or_a_wrong_one_is_401(ecs_alice, headers):
    body = assert_error(await ecs_alice.get("/plans", token=False, headers=headers), 401)
    assert body["message"]


async def test_the_secret_key_is_not_a_token(ecs_alice):
    api = ecs_alice.api
    for headers in (
        {"X-APITOKEN": api.secret},
        {"Authorization": f"Bearer {api.secret}"},
        {"Authorization": api.secret},
        api.auth(),
    ):
        answer = await ecs_alice.get("/account", token=False, headers=headers)
        assert_error(answer, 401)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_two_tokens_at_once_are_refused(ecs_alice):
    headers = {"X-APITOKEN": ecs_alice.token, "Authorization": f"Bearer {ecs_alice.token}"}
    assert_error(await ecs_alice.get("/account", token=False, headers=headers), 401)


async def test_a_revoked_token_is_refused_at_once(client, ecs_alice):
    tokens = client.app[SERVICES].tokens
    assert (await ecs_alice.get("/account")).status == 200
    [listed] = await tokens.list(ecs_alice.user)
    assert ecs_alice.token.startswith(listed.hint) and listed.group is None
    await tokens.revoke(ecs_alice.token)
    assert_error(await ecs_alice.get("/account"), 401)
    assert await tokens.list(ecs_alice.user) == []


async def test_tokens_are_stored_as_hashes(client, ecs_alice):
    store = client.app[SERVICES].tokens.store
    [row] = await store.list_tokens(ecs_alice.user)
    assert ecs_alice.token.encode() not in row.digest and len(row.digest) == 32


async def test_login_with_json(client, alice):
    before = int(time.time())
    reply = await client.post("/ecs/v2/login", json={"username": alice.user, "password": alice.secret})
    assert reply.status == 200
    body = await reply.json()
    assert body["status"] == "ok" and isinstance(body["expire"], int)
    assert before + 4 * 3600 <= body["expire"] <= int(time.time()) + 4 * 3600
    for headers in (
        {"X-APITOKEN": body["token"]},
        {"Authorization": body["token"]},
        {"Authorization": f"Bearer {body['token']}"},
    ):
        account = await client.get("/ecs/v2/account", headers=headers)
        assert account.status == 200 and (await account.json())["username"] == alice.user


async def test_login_with_forms(client, alice):
    form = aiohttp.FormData({"username": alice.user, "password": alice.secret})
    urlencoded = await client.post("/ecs/v2/login", data=form)
    multipart = aiohttp.FormData()
    multipart.add_field("username", alice.user)
    multipart.add_field("password", alice.secret)
    multipart._is_multipart = True  # as curl -F sends it
    sent = await client.post("/ecs/v2/login", data=multipart)
    assert sent.request_info.headers["Content-Type"].startswith("multipart/form-data")
    for reply in (urlencoded, sent):
        assert reply.status == 200, await reply.text()
        token = (await reply.json())["token"]
        assert (await client.get("/ecs/v2/account", headers={"X-APITOKEN": token})).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "{user}", "password": "wrong"},
        {"username": "00000000-0000-0000-0000-000000000001", "password": "{secret}"},
        {"username": "not-a-uuid", "password": "{secret}"},
    ],
)
async def test_login_with_wrong_credentials_is_401(client, alice, body):
    sent = {k: v.format(user=alice.user, secret=alice.secret) for k, v in body.items()}
    reply = await client.post("/ecs/v2/login", json=sent)
    assert reply.status == 401 and (await reply.json())["error_code"] == 401


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'{"username": 1, "password": "x"}',
        b'{"username": "u"}',
        b'{"username": "u", "password": "p", "extra": 1}',
    ],
)
async def test_login_with_bad_bodies_is_400(client, raw):
    reply = await client.post("/ecs/v2/login", data=raw, headers={"Content-Type": "application/json"})
    assert reply.status == 400 and (await reply.json())["status"] == "error"


async def test_a_login_token_expires(client, alice):
    tokens = client.app[SERVICES].tokens
    token, expires = await tokens.login(alice.user, alice.secret.encode())
    assert (await tokens.authenticate(token)).user == alice.user
    clock = tokens.clock
    try:
        tokens.clock = lambda: expires + 1
        assert (await client.get("/ecs/v2/account", headers={"X-APITOKEN": token})).status == 401
    finally:
        tokens.clock = clock


async def test_a_forged_login_token_is_refused(client, alice, bob):
    token, _ = await client.app[SERVICES].tokens.login(alice.user, alice.secret.encode())
    user, expires, signature = token.split(".")
    for forged in (
        f"{bob.user}.{expires}.{signature}",
        f"{user}.{int(expires) + 3600}.{signature}",
        f"{user}.{expires}.{'A' * 43}",
    ):
        assert (await client.get("/ecs/v2/account", headers={"X-APITOKEN": forged})).status == 401


async def test_the_signing_key_is_made_once_and_private(client, alice, config):
    await client.app[SERVICES].tokens.login(alice.user, alice.secret.encode())
    path = config.token_key_path
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    assert path.parent == config.master_key_path.parent
