"""JSON bodies that Python's json module takes but nothing behind it can: numbers past the
int-string limit (4,300 digits) and lone UTF-16 surrogates. Every route answers 400 usage."""

from __future__ import annotations

import pytest

# Each route's own valid keys, so a bad value is what the answer is about (not an unknown key).
ROUTES = {
    "/drives/create": '"name": "n", "size": 1048576',
    "/drives/{drive}/set": '"size": 1048576',
    "/servers/create/stopped": '"name": "n", "cpu": 1000, "mem": 64',
    "/servers/{server}/set": '"cpu": 1000',
    "/resources/vlan/create": '"name": "n"',
    "/resources/vlan/{vlan}/set": '"name": "n"',
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(
    "bad",
    [
        '"name": ' + "9" * 5000,
        '"user:n": -' + "7" * 4400,
        '"user:n": ' + "5" * 4301,
        '"name": "\\ud800"',
        '"tags": ["a", "b\\udfff"]',
        '"user:x": "tail\\udbff"',
        '"\\ud800": "x"',
    ],
)
async def test_unparseable_json_is_usage(alice, objects, route, bad):
    reply = await alice.call(
        route.format(**objects),
        ("{" + ROUTES[route] + ", " + bad + "}").encode(),
        headers={"Content-Type": "application/json"},
    )
    assert (reply.status, reply.error) == (400, "usage"), reply.text
    assert reply.text.count("\n") == 1 and "Traceback" not in reply.text


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_long_but_valid_body_still_works(alice, objects, route):
    """The negative case beside them: a surrogate pair (one emoji) and a 19-digit number are fine."""
    body = "{" + ROUTES[route] + ', "user:big": 1234567890123456789, "user:e": "n \\ud83d\\ude00"}'
    reply = await alice.call(
        route.format(**objects), body.encode(), headers={"Content-Type": "application/json"}, as_json=True
    )
    assert reply.status == 200, reply.text
    assert reply.json["user:e"] == "n \U0001f600" and reply.json["user:big"] == "1234567890123456789"


@pytest.mark.parametrize(
    "key, body",
    [
        ("size", '{"name": "n", "size": 1%s}'),
        ("cpu", '{"name": "n", "cpu": 1%s, "mem": 64}'),
    ],
)
async def test_sizes_and_counts_too_long_for_their_key_are_usage(alice, key, body):
    route = "/drives/create" if key == "size" else "/servers/create/stopped"
    reply = await alice.call(route, (body % ("0" * 4400)).encode(), headers={"Content-Type": "application/json"})
    assert (reply.status, reply.error) == (400, "usage"), reply.text
    assert key in reply.text
