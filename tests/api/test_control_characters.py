"""Control characters in free text (name, tags, user:* values): refused on input by one rule for
drives, servers and resources (model/fields.py); rows stored before the rule still load and are
never written raw."""

from __future__ import annotations

import json
import sqlite3

import pytest

from elastic_api.api.elastichosts.properties import parse_text
from elastic_api.store import legacy_server_rows, server_rows

ALL_USERS = "ffffffff-ffff-ffff-ffff-ffffffffffff"
# NUL, BEL, TAB, CR, ESC, US, DEL, C1 (NEL, CSI) and the Unicode line separator.
REFUSED = ["\x00", "\x07", "\t", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\x9b", "\u2028"]
FORGE = f"x\rreaders {ALL_USERS}"


# Each route with the keys it needs besides the free text under test.
ROUTES = {
    "/drives/create": {"name": "n", "size": "1M"},
    "/drives/{drive}/set": {},
    "/servers/create/stopped": {"name": "n", "cpu": "1000", "mem": "64"},
    "/servers/{server}/set": {},
    "/resources/vlan/create": {},
    "/resources/vlan/{vlan}/set": {},
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("key", ["name", "tags", "user:note"])
@pytest.mark.parametrize("char", REFUSED)
async def test_control_characters_are_refused_everywhere(alice, objects, route, key, char):
    body = {**ROUTES[route], key: f"a{char}b"}
    reply = await alice.call(route.format(**objects), body)
    assert (reply.status, reply.error) == (400, "usage"), (reply.status, reply.text)
    assert key in reply.text and reply.text.count("\n") == 1


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_forged_line_in_text_input_is_refused(alice, objects, route):
    text = "".join(f"{k} {v}\n" for k, v in ROUTES[route].items()) + f"user:x {FORGE}\n"
    reply = await alice.call(route.format(**objects), text.encode())
    assert (reply.status, reply.error) == (400, "usage"), reply.text


@pytest.mark.parametrize("route", list(ROUTES))
async def test_one_rule_for_every_object(alice, objects, route):
    """Beside the refusals: what every object accepts, and the same length limits for all."""
    path = route.format(**objects)
    ok = {**ROUTES[route], "name": "Ünïcode ✓ name", "tags": ["t" * 128, "b"], "user:note": "line one\nline two"}
    reply = await alice.call(path, ok)
    assert reply.status == 200, reply.text
    assert reply.props()["user:note"] == "line one\\nline two"  # the protocol's newline escape
    assert parse_text(reply.body)["user:note"] == "line one\nline two"
    assert reply.props()["tags"] == "t" * 128 + " b"
    for too_long in ({"tags": "t" * 129}, {"name": "n" * 257}, {"user:x": "u" * 4097}):
        reply = await alice.call(path, {**ROUTES[route], **too_long})
        assert (reply.status, reply.error) == (400, "usage"), (too_long.keys(), reply.text)


def _raw(db, sql, *args):
    with sqlite3.connect(db) as connection:
        assert connection.execute(sql, args).rowcount == 1


def _assert_no_raw_controls(text: str) -> None:
    assert not any(c in text for c in REFUSED), repr(text)


async def test_stored_rows_with_control_characters_load_and_render_escaped(alice, bob, objects, config):
    """Rows written before the rule, straight into SQLite: they load, and neither text nor JSON
    output carries a control character raw, so a name cannot forge a key line for a reader."""
    drive, server, vlan = objects["drive"], objects["server"], objects["vlan"]
    assert (await alice.call(f"/drives/{drive}/set", f"readers {bob.user}\n")).status == 200
    tags = json.dumps({"tags": ["ok", "e\x1b[31m", "nul\x00"], "user": {"user:n": "bel\x07\x85"}})
    _raw(config.db_path, "UPDATE drives SET name = ?, keys = ? WHERE id = ?", FORGE, tags, drive)
    _raw(config.db_path, "UPDATE resources SET name = ?, keys = ? WHERE id = ?", FORGE, tags, vlan)
    stored = {"name": FORGE, "cpu": "1000", "mem": "64", "tags": "ok e\x1b[31m", "user:n": "bel\x07\u2028"}
    # A server row of the code before typed rows, as the migration left it.
    _raw(
        config.db_path,
        "UPDATE servers SET config = ? WHERE id = ?",
        server_rows.dump(legacy_server_rows.read(stored)),
        server,
    )

    for who, path in [
        (bob, f"/drives/{drive}/info"),
        (bob, "/drives/info"),
        (alice, f"/drives/{drive}/info"),
        (alice, f"/servers/{server}/info"),
        (alice, "/servers/info"),
        (alice, f"/resources/vlan/{vlan}/info"),
        (alice, "/resources/info"),
    ]:
        text = await who.get(path)
        assert text.status == 200, (path, text.text)
        _assert_no_raw_controls(text.text)
        assert not any(line.startswith("readers " + ALL_USERS) for line in text.text.splitlines()), text.text
        assert "name x\\x0dreaders " + ALL_USERS in text.text
        assert "\\x1b[31m" in text.text
        as_json = await who.get(path, as_json=True)
        assert as_json.status == 200
        _assert_no_raw_controls(as_json.text)
        loaded = as_json.json if isinstance(as_json.json, dict) else as_json.json[0]
        assert loaded["name"] == FORGE  # the stored value itself, escaped only on the wire
    # The rows still work: a set of another key leaves the old text as it is...
    assert (await alice.call(f"/drives/{drive}/set", {"claim:type": "shared"})).status == 200
    kept = await alice.call(f"/servers/{server}/set", {"cpu": "2000"}, as_json=True)
    assert kept.status == 200 and kept.json["name"] == FORGE and kept.json["cpu"] == 2000
    # ...while new text is held to the rule, and a set that replaces the bad text is taken.
    refused = await alice.call(f"/servers/{server}/set", {"cpu": "1000", "user:m": "\x1b"})
    assert (refused.status, refused.error) == (400, "usage")
    assert (await alice.call(f"/drives/{drive}/set", {"name": "clean", "tags": "ok"})).status == 200
    assert (await alice.call(f"/resources/vlan/{vlan}/set", {"name": "clean"})).status == 200
    fixed = await alice.call(f"/servers/{server}/set", {"name": "clean", "tags": "ok", "user:n": ""})
    assert fixed.status == 200, fixed.text


@pytest.mark.parametrize(
    "path",
    [
        "/drives/%1b%5b2J%07/info",
        "/drives/x%0dreaders%20ffff/info",
        "/servers/%00%c2%85/info",
        "/resources/vlan/%1b/info",
    ],
)
async def test_error_lines_never_echo_control_characters(alice, path):
    reply = await alice.get(path)
    assert (reply.status, reply.error) == (404, "missing")
    assert reply.text.count("\n") == 1 and reply.text.endswith("\n")
    _assert_no_raw_controls(reply.text[:-1])


async def test_error_lines_quote_ordinary_text_as_it_is(alice):
    reply = await alice.get("/drives/no-such-drive/info")
    assert reply.text == "no such drive: no-such-drive\n"
