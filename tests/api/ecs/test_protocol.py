"""The ECS dialect's transport rules: JSON errors for every mistake, 405 and 404, strict bodies,
paging (limit, marker, next), and the ElasticHosts dialect beside it unchanged."""

from __future__ import annotations

import json

import pytest

from elastic_api.api.ecs.routes import PREFIX, ROUTES
from tests.api.ecs.conftest import assert_error, ssh_key


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "/plans"),
        ("POST", "/plans"),
        ("PUT", "/sshkeys"),
        ("PATCH", "/groups"),
        ("GET", "/login"),
        ("POST", "/sshkeys/1"),
        ("PUT", "/regions/availables"),
    ],
)
async def test_a_wrong_method_on_a_known_path_is_405(ecs_alice, method, path):
    body = assert_error(await ecs_alice.call(method, path), 405)
    assert "not allowed" in body["message"]


async def test_head_is_get_without_a_body(ecs_alice):
    answer = await ecs_alice.call("HEAD", "/regions")
    assert answer.status == 200 and answer.body == b"" and answer.headers["Content-Type"].startswith("application/json")
    assert (await ecs_alice.call("HEAD", "/login")).status == 405


async def test_without_a_token_a_wrong_method_is_401_first(ecs_alice):
    assert_error(await ecs_alice.call("DELETE", "/plans", token=False), 401)


@pytest.mark.parametrize(
    "path", ["", "/", "/nothing", "/servers/x/y/z", "/plans/unknown", "/sshkeys/1/2", "/%00", "/images", "/PLANS"]
)
async def test_unknown_paths_are_404_json(ecs_alice, path):
    assert_error(await ecs_alice.get(path), 404)
    assert_error(await ecs_alice.get(path, token=False), 404)


async def test_json_whatever_accept_says(ecs_alice):
    for accept in ("text/plain", "*/*", "text/html", "application/xml"):
        answer = await ecs_alice.get("/regions", headers={"Accept": accept})
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
        assert_error(await ecs_alice.get("/nothing", headers={"Accept": accept}), 404)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"{'key': 1}",
        b"\xff\xfe",
        b"[1, 2]",
        b'"text"',
        b"NaN",
        b'{"key": NaN, "label": "x"}',
        b'{"key": "a", "key": "b", "label": "x"}',
        b"[" * 50_000,
        b'{"key": 1, "label": "x"}',
        b'{"key": "k", "label": ["x"]}',
        b'{"key": "k", "label": "x", "id": 3}',
    ],
)
async def test_malformed_bodies_are_400(ecs_alice, raw):
    for content_type in ("application/json", None):
        headers = {"Content-Type": content_type} if content_type else {}
        assert_error(await ecs_alice.post("/sshkeys", raw=raw, headers=headers), 400)


async def test_a_body_without_content_type_is_json(ecs_alice):
    raw = json.dumps({"key": ssh_key(), "label": "bare"}).encode()
    assert (await ecs_alice.post("/sshkeys", raw=raw, headers={"Content-Type": ""})).status == 200


async def test_a_body_too_large_is_413(ecs_alice, config):
    raw = json.dumps({"key": "x" * config.max_metadata_body, "label": "big"}).encode()
    assert_error(await ecs_alice.post("/sshkeys", raw=raw), 413)


async def test_an_unmeetable_expectation_is_417_json(ecs_alice):
    assert_error(await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "x"}, headers={"Expect": "magic"}), 417)


async def _keys(ecs, n):
    for i in range(n):
        assert (await ecs.post("/sshkeys", {"key": ssh_key(comment=str(i)), "label": f"k{i}"})).status == 200
    return [k["id"] for k in (await ecs.get("/sshkeys")).json["pubkeys"]]


async def test_paging_with_limit_marker_and_next(ecs_alice):
    ids = await _keys(ecs_alice, 5)
    seen: list[int] = []
    path: str | None = "/sshkeys?limit=2"
    pages = 0
    while path:
        answer = (await ecs_alice.get(path)).json
        seen += [k["id"] for k in answer["pubkeys"]]
        nxt = answer.get("next")
        path = nxt[len(PREFIX) :] if nxt else None
        if nxt:
            assert nxt.startswith(PREFIX + "/sshkeys?") and "limit=2" in nxt
        pages += 1
    assert seen == ids and pages == 3
    # A page that ends exactly at the end has no next.
    last = (await ecs_alice.get(f"/sshkeys?limit=2&marker={ids[2]}")).json
    assert [k["id"] for k in last["pubkeys"]] == ids[3:] and "next" not in last
    assert (await ecs_alice.get(f"/sshkeys?marker={ids[-1]}")).json["pubkeys"] == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1001",
        "limit=",
        "limit=1.5",
        "marker=",
        "marker=abc",
        "marker=999999",
        "limit=1&limit=2",
    ],
)
async def test_bad_paging_is_400(ecs_alice, query):
    await _keys(ecs_alice, 1)
    for path in ("/sshkeys", "/groups", "/images/basics", "/images/cloud-images"):
        assert_error(await ecs_alice.get(f"{path}?{query}"), 400)


async def test_another_users_marker_is_400(ecs_alice, ecs_bob):
    [theirs] = await _keys(ecs_alice, 1)
    await _keys(ecs_bob, 1)
    assert_error(await ecs_bob.get(f"/sshkeys?limit=1&marker={theirs}"), 400)
    group = (await ecs_alice.post("/groups", {"notes": "", "password": "p"})).json["group"]
    assert_error(await ecs_bob.get(f"/groups?marker={group['id']}"), 400)


async def test_every_route_is_behind_its_policy(ecs_alice):
    """Every route but the login refuses a request without a token, and answers JSON."""
    for route in ROUTES:
        path = route.path.replace("{id}", "1").replace("{name}", "ec100001")
        answer = await ecs_alice.call(route.method, path, token=False)
        if route.path == "/login":
            assert_error(answer, 400)  # no body: the credentials are missing
        else:
            assert_error(answer, 401)


async def test_the_elastichosts_dialect_is_unchanged(ecs_alice):
    api = ecs_alice.api
    listed = await api.get("/drives/list")
    assert listed.status == 200 and listed.headers["Content-Type"].startswith("text/plain")
    missing = await api.get("/nothing/here")
    assert missing.status == 404 and missing.error == "missing"
    assert missing.headers["Content-Type"].startswith("text/plain")
    # Paths that merely start like the ECS prefix are still the ElasticHosts dialect's.
    for path in ("/ecs", "/ecs/v1/plans", "/ecs/v20/plans"):
        answer = await api.get(path)
        assert answer.status == 404 and answer.error == "missing", path
    # A token is no ElasticHosts credential.
    answer = await api.get("/drives/list", auth=False, headers={"Authorization": f"Bearer {ecs_alice.token}"})
    assert answer.status == 401 and answer.error == "auth"


@pytest.mark.parametrize("field", ["notes", "password"])
async def test_a_nul_in_any_text_is_400_and_nothing_is_made(ecs_alice, field):
    body = {"notes": "web tier", "password": "s3cret"} | {field: "before\x00after"}
    answer = await ecs_alice.post("/groups", body)
    assert_error(answer, 400)
    assert field in answer.json["message"] and "NUL" in answer.json["message"]
    assert (await ecs_alice.get("/groups")).json["groups"] == []
