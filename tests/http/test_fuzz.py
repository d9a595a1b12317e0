"""Fuzzed requests through the real app (aiohttp test client, SQLite, pool, a test:/// host):
whatever the path, query, headers or body, the answer is never a 5xx and never a traceback; every
error carries its X-Elastic-Error word and one line of text."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.conftest import Api, Reply, make_app, started_client
from tests.support import libvirt_test_host

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    api: Api
    drive: str
    server: str

    def call(self, path: str, body: Any = None, **kw: Any) -> Reply:
        reply: Reply = self.loop.run_until_complete(self.api.call(path, body, **kw))
        check(reply, head=kw.get("method") == "HEAD")
        return reply


def check(reply: Reply, head: bool = False) -> None:
    assert reply.headers["Server"] == "elastic-api"  # no versions of what runs behind it
    assert reply.status < 500 or (reply.status, reply.error) == (507, "full"), (reply.status, reply.text)
    if reply.status >= 400:
        assert reply.error in ("usage", "auth", "missing", "method", "busy", "full"), reply.error
        assert head or (reply.text.endswith("\n") and reply.text.count("\n") == 1), reply.text
        assert "Traceback" not in reply.text and 'File "' not in reply.text


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """One app for all of a test's examples, on a loop of its own (Hypothesis drives it)."""
    host = libvirt_test_host(tmp_path / "host.xml", memory_mb=8192)
    config = Config(data_dir=tmp_path / "var", hosts=(HostConfig("test", f"test://{host}"),))

    async def start() -> tuple[TestClient[Any, Any], Live]:
        client = await started_client(make_app(config))
        api = Api(client, *await client.app[SERVICES].users.create("fuzz"))
        drive = (await api.create_drive("1M"))["drive"]
        server = await api.call(
            "/servers/create/stopped", {"name": "s", "cpu": "1000", "mem": "64", "persistent": "true"}
        )
        return client, Live(loop, api, drive, server.props()["server"])

    loop = asyncio.new_event_loop()
    try:
        client, made = loop.run_until_complete(start())
        try:
            yield made
        finally:
            loop.run_until_complete(client.close())
    finally:
        loop.close()


SEGMENT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "info",
            "list",
            "create",
            "set",
            "destroy",
            "read",
            "write",
            "image",
            "standard",
            "start",
            "..",
            ".",
            "%2F",
            "0",
            "1M",
            "-1",
            "gzip",
            "gunzip",
        ]
    ),
)
METHOD = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"])


def path_of(segments: list[str]) -> str:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    return "/x" + path if path.startswith("//") else path  # a client reads "//host" as an authority


@FUZZ
@given(st.lists(SEGMENT, max_size=6), METHOD)
def test_any_path(live, segments, method):
    live.call(path_of(segments), method=method)


@FUZZ
@given(st.sampled_from(["drives", "servers"]), SEGMENT, SEGMENT, SEGMENT, METHOD)
def test_paths_under_objects(live, kind, a, b, c, method):
    for own in (live.drive if kind == "drives" else live.server, a):
        live.call(path_of([kind, own, b, c]), method=method)
        live.call(path_of([kind, own, b]), method=method)
    live.call(path_of(["drives", live.drive, "read", a, b]), method=method)
    live.call(path_of(["drives", live.drive, "image", a, b]), method="POST")


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["limit", "marker", "x", ""]), st.text(max_size=40), max_size=3),
    st.sampled_from(["/drives/list", "/drives/info", "/servers/list", "/servers/info", "/drives/list/standard"]),
)
def test_any_query(live, query, path):
    text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    live.call(f"{path}?{text}", method="GET")


BODY = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "name",
                    "size",
                    "cpu",
                    "mem",
                    "tags",
                    "readers",
                    "ide:0:0",
                    "boot",
                    "user:x",
                    "nic:0:model",
                    "vnc",
                    "persistent",
                    "claim:type",
                    "bad key",
                ]
            ),
            st.text(max_size=20),
        ),
        max_size=5,
    ).map(lambda kv: "".join(f"{k} {v}\n" for k, v in kv).encode()),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
    # A number past Python's 4,300-digit int-string limit, or a lone surrogate, as a value.
    st.tuples(
        st.sampled_from(["name", "size", "cpu", "mem", "user:x", "smp"]),
        st.one_of(
            st.integers(4200, 6000).map(lambda n: "9" * n), st.integers(0xD800, 0xDFFF).map(lambda n: f'"x\\u{n:04x}"')
        ),
    ).map(lambda kv: f'{{"name": "n", "size": "1M", "cpu": 1000, "mem": 64, "{kv[0]}": {kv[1]}}}'.encode()),
)
CONTENT_TYPE = st.sampled_from(["application/json", "text/plain", "application/octet-stream", "", "x/y; charset=z"])


@FUZZ
@given(
    BODY,
    CONTENT_TYPE,
    st.sampled_from(
        [
            "/drives/create",
            "/servers/create/stopped",
            "/drives/{drive}/set",
            "/servers/{server}/set",
            "/drives/{drive}/info",
        ]
    ),
)
def test_any_body(live, body, content_type, path):
    path = path.format(drive=live.drive, server=live.server)
    headers = {"Content-Type": content_type} if content_type else {}
    reply = live.call(path, body, headers=headers)
    if reply.status == 200 and path.endswith("create"):
        kind = "drive" if "drives" in path else "server"
        live.call(f"/{kind}s/{reply.props()[kind]}/destroy")


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["gzip", "identity", "deflate", "GZIP", ""]), st.text(max_size=12))
def test_any_write(live, body, encoding, offset):
    headers = {"Content-Encoding": encoding} if encoding else {}
    live.call(f"/drives/{live.drive}/write/{quote(offset, safe='')}", body, headers=headers)


@FUZZ
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode())))
def test_any_authorization(live, header):
    try:
        header.encode("latin-1")
    except UnicodeEncodeError:
        header = header.encode("utf-8").decode("latin-1")
    # Control characters are not HTTP at all (the client refuses to send them; aiohttp's parser
    # answers such a message itself, before any handler).
    header = "".join(c for c in header if c == "\t" or " " <= c != "\x7f")
    reply = live.call("/drives/list", method="GET", auth=False, headers={"Authorization": header})
    assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Basic ")
