"""Text properties and JSON: parsing, rendering, escaping, malformed input."""

from __future__ import annotations

import json

import pytest

from elastic_api.errors import UsageError
from elastic_api.api.elastichosts.properties import (
    Info,
    escape,
    parse_body,
    parse_json,
    parse_text,
    render_json,
    render_list,
    render_properties,
    render_properties_list,
    unescape,
)


def test_text_lines_split_on_the_first_space():
    assert parse_text(b"name my drive  \nsize 10G\n\n") == {"name": "my drive", "size": "10G"}


def test_text_accepts_crlf_tabs_and_a_key_without_value():
    assert parse_text(b"name\tx y\r\ntags\r\n") == {"name": "x y", "tags": ""}


def test_text_newline_escape_round_trips():
    props = {"user:note": "line one\nline two"}
    assert render_properties(props) == "user:note line one\\nline two\n"
    assert parse_text(render_properties(props).encode()) == props
    assert unescape(escape("a\nb")) == "a\nb"


@pytest.mark.parametrize(
    "body, word",
    [
        (b"name a\nname b\n", "twice"),
        (b"bad!key value\n", "bad key"),
        (b"\xff\xfe\n", "UTF-8"),
        (b"x" * 200 + b" value", "bad key"),
    ],
)
def test_text_malformed(body, word):
    with pytest.raises(UsageError, match=word):
        parse_text(body)


def test_json_values_become_strings_and_arrays_words():
    props = parse_json(b'{"name": "d", "size": 1024, "tags": ["a", "b"], "persistent": true}')
    assert props == {"name": "d", "size": "1024", "tags": "a b", "persistent": "true"}


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"text"',
        b"{not json",
        b'{"size": 1.5}',
        b'{"tags": ["a b"]}',
        b'{"tags": [1]}',
        b'{"x": null}',
        b'{"x": {"y": 1}}',
        b"[" * 100000,
    ],
)
def test_json_malformed(body):
    with pytest.raises(UsageError):
        parse_json(body)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream", ""],
)
def test_empty_body_is_no_keys_whatever_the_label(content_type):
    assert parse_body(b"", content_type) == {}
    assert parse_body(b"  \n", content_type) == {}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "application/x-www-form-urlencoded", ""]
)
def test_every_other_label_is_text(content_type):
    assert parse_body(b"name x\n", content_type) == {"name": "x"}


def test_render_shapes():
    rows: list[Info] = [{"server": "s1", "cpu": 1000, "mem": 512}, {"server": "s2", "cpu": 2000, "mem": 256}]
    assert render_list(rows, ("server", "cpu", "mem")) == "s1 1000 512\ns2 2000 256\n"
    blocks = render_properties_list([{"a": "1"}, {"a": "2", "tags": ["x", "y"]}])
    assert blocks == "a 1\n\na 2\ntags x y\n"
    assert render_properties({"claimed": []}) == "claimed \n"
    assert json.loads(render_json({"size": 5, "tags": ["a"]})) == {"size": 5, "tags": ["a"]}
