"""ECS fixtures: users with API tokens, and a client speaking the ECS dialect's JSON."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, replace
from tests.conftest import Api


def ssh_key(kind: str = "ssh-ed25519", comment: str = "me@host", payload: bytes = b"k" * 32) -> str:
    """An OpenSSH public key line whose blob names its type, as sshd checks."""
    blob = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", len(payload)) + payload
    return f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Ecs:
    """One principal's view of /ecs/v2 through aiohttp's test client."""

    def __init__(self, client: Any, api: Api, token: str) -> None:
        self.client, self.api, self.token = client, api, token

    @property
    def user(self) -> str:
        return self.api.user

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        token: bool = True,
        raw: bytes | None = None,
    ) -> Answer:
        send = {"X-APITOKEN": self.token} if token else {}
        send.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if body is not None and raw is None:
            send.setdefault("Content-Type", "application/json")
        async with self.client.request(method, "/ecs/v2" + path, data=data, headers=send) as response:
            return Answer(response.status, response.headers, await response.read())

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.call("POST", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.call("DELETE", path, **kw)


# How long a create with a script waits for the guest's END marker here: the libvirt test driver
# runs no guest, so every such create ends by this bound (with its warning in the program's log).
CUSTOMIZE_TIMEOUT = 2.0


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, ecs_customize_timeout_seconds=CUSTOMIZE_TIMEOUT)


@pytest.fixture
async def ecs_user(client: Any, make_user: Any) -> Any:
    async def make(name: str = "", group: str | None = None, api: Api | None = None) -> Ecs:
        api = api or await make_user(name)
        token = await client.app[SERVICES].tokens.create(api.user, group)
        return Ecs(client, api, token)

    return make


@pytest.fixture
async def ecs_alice(ecs_user: Any, alice: Api) -> Ecs:
    return await ecs_user(api=alice)


@pytest.fixture
async def ecs_bob(ecs_user: Any, bob: Api) -> Ecs:
    return await ecs_user(api=bob)


def assert_error(answer: Answer, status: int) -> dict[str, Any]:
    """An error in the ECS shape (ECS.md §2.7): JSON, whatever was asked, one line, no traceback."""
    assert answer.status == status, (answer.status, answer.text)
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json
    assert set(body) == {"status", "error_code", "message"}, body
    assert body["status"] == "error" and body["error_code"] == status
    assert isinstance(body["message"], str) and "\n" not in body["message"]
    assert "Traceback" not in answer.text
    return body
