"""Fuzzed requests to every ECS route through the real app: whatever the path, method, query,
headers or body, the answer is never a 5xx and never a traceback, and every error is the ECS
JSON shape with its status as error_code."""

from __future__ import annotations

import asyncio
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
from yarl import URL

from elastic_api.api.ecs.routes import ROUTES
from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.api.ecs.conftest import Answer, ssh_key
from tests.conftest import make_app, started_client
from tests.support import libvirt_test_host

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    client: Any
    token: str
    user: str
    secret: str

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: bool = True,
    ) -> Answer:
        async def send() -> Answer:
            sent = {"X-APITOKEN": self.token} if token else {}
            sent.update(headers or {})
            async with self.client.request(method, path, data=body, headers=sent) as response:
                return Answer(response.status, response.headers, await response.read())

        answer = self.loop.run_until_complete(send())
        # `..` segments can lead out of /ecs/v2 (the client resolves them): there the ElasticHosts
        # dialect answers, in its own shape.
        check(answer, method, ecs=URL("http://host" + path).path.startswith("/ecs/v2"))
        return answer


def check(answer: Answer, method: str, ecs: bool = True) -> None:
    assert answer.headers["Server"] == "elastic-api"
    assert answer.status < 500, (answer.status, answer.text)
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    if method != "HEAD" and ecs:
        assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
        body = json.loads(answer.body)
        if answer.status >= 400:
            assert body["status"] == "error" and body["error_code"] == answer.status, body
            assert isinstance(body["message"], str) and "\n" not in body["message"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    host = libvirt_test_host(tmp_path / "host.xml", memory_mb=8192)
    config = Config(data_dir=tmp_path / "var", hosts=(HostConfig("test", f"test://{host}"),))

    async def start() -> tuple[TestClient[Any, Any], Live]:
        client = await started_client(make_app(config))
        services = client.app[SERVICES]
        user, secret = await services.users.create("fuzz")
        token = await services.tokens.create(user)
        await services.ssh_keys.add(user, "kept", ssh_key())
        await services.groups.create(user, "kept", "pw")
        image = tmp_path / "tiny.raw"
        image.write_bytes(b"\x55" * 4096)
        await services.imaging.add_standard("a1b2c3d4-0000-4000-8000-000000000004", "Tiny OS 1", image)
        from elastic_api.service.ecs_servers import EcsCreate

        _, job = await services.ecs.create(user, None, EcsCreate("ECS1", "tiny-os-1", "local", "kept"))
        while (await services.ecs.get_action(user, None, job.id)).unfinished:
            await asyncio.sleep(0.05)
        return client, Live(loop, client, token, user, secret)

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
    st.text(max_size=30),
    st.sampled_from(
        [
            "plans",
            "availables",
            "regions",
            "images",
            "basics",
            "cloud-images",
            "sshkeys",
            "groups",
            "login",
            "account",
            "1",
            "0",
            "-1",
            "..",
            ".",
            "%2F",
            "99999999999999999999",
            "servers",
            "actions",
            "status",
            "isolations",
            "ec100001",
            "ec999999",
            "ec",
            "ec0100001",
        ]
    ),
)
METHOD = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH"])


@FUZZ
@given(st.lists(SEGMENT, max_size=4), METHOD, st.booleans())
def test_any_path(live, segments, method, token):
    live.call(method, "/ecs/v2/" + "/".join(quote(s, safe="") for s in segments), token=token)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["limit", "marker", "x", "", "start", "length", "resource"]), st.text(max_size=30), max_size=3
    ),
    st.sampled_from(
        ["/sshkeys", "/groups", "/images/basics", "/images/cloud-images", "/plans", "/servers", "/actions"]
    ),
)
def test_any_query(live, query, path):
    text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    live.call("GET", f"/ecs/v2{path}?{text}")


KEYS = st.sampled_from(
    [
        "key",
        "label",
        "notes",
        "password",
        "plan",
        "username",
        "extra",
        "",
        "note",
        "group",
        "type",
        "snapshot",
        "isolate_from",
        "networks",
    ]
)
BODY = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=10,
    ).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(KEYS, st.none() | st.booleans() | st.integers() | st.text(max_size=20), max_size=4).map(
        lambda v: json.dumps(v).encode()
    ),
    st.tuples(
        KEYS,
        st.one_of(
            st.integers(4200, 6000).map(lambda n: "9" * n), st.integers(0xD800, 0xDFFF).map(lambda n: f'"x\\u{n:04x}"')
        ),
    ).map(lambda kv: f'{{"label": "l", "notes": "n", "{kv[0]}": {kv[1]}}}'.encode()),
    st.lists(st.tuples(KEYS, st.text(max_size=10)), max_size=4).map(
        lambda kv: "&".join(f"{quote(k)}={quote(v)}" for k, v in kv).encode()
    ),
)
CONTENT_TYPE = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "x/y; charset=z",
    ]
)
CHANGES = sorted({r.path.replace("{name}", "ec100001") for r in ROUTES if r.method == "POST"})
UPDATES = sorted({r.path.replace("{name}", "ec100001") for r in ROUTES if r.method == "PUT"})


@FUZZ
@given(BODY, CONTENT_TYPE, st.sampled_from(CHANGES))
def test_any_body(live, body, content_type, path):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = live.call("POST", "/ecs/v2" + path, body, headers=headers)
    if answer.status == 200 and path == "/sshkeys":
        for key in json.loads(live.call("GET", "/ecs/v2/sshkeys").body)["pubkeys"]:
            if key["label"] != "kept":
                live.call("DELETE", f"/ecs/v2/sshkeys/{key['id']}")


@FUZZ
@given(BODY, CONTENT_TYPE, st.sampled_from(UPDATES))
def test_any_update_body(live, body, content_type, path):
    headers = {"Content-Type": content_type} if content_type else {}
    live.call("PUT", "/ecs/v2" + path, body, headers=headers)
