"""Messages aiohttp's parser refuses, against the real `elastic-api serve`: answered like every
other error (status, X-Elastic-Error word, one line), the client's bytes never echoed, the
connection closed, and the server serving the next client as before."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
import yaml

from tests.support import Server, create_user, write_config

SECRETISH = "zq-canary-7f3"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = write_config(tmp_path_factory.mktemp("malformed"))
    user, secret = create_user(config)
    server = Server(config).start()
    host, port = yaml.safe_load(config.read_text())["listen"].rsplit(":", 1)
    try:
        yield host, int(port), "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    finally:
        assert server.stop() == 0


async def exchange(host: str, port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer, read until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=60)  # to EOF: the server must close
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "data",
    [
        f"{SECRETISH} / HTTP/1.1\r\n\r\n".encode(),  # no such method
        f"GET /drives/list HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01{SECRETISH}\r\n\r\n".encode(),  # control character
        f"GET /drives/list HTTP/1.1\r\nHost: x\r\nX-Long: {SECRETISH}{'a' * 70000}\r\n\r\n".encode(),  # header too long
        f"GET /{SECRETISH}\x00 HTTP/1.1\r\n\r\n".encode(),  # NUL in the target
        f"GET /drives/list HTTP/9.{SECRETISH}\r\n\r\n".encode(),  # no such version
    ],
    ids=["method", "control-character", "long-header", "nul", "version"],
)
async def test_refused_messages_are_answered_in_our_shape(running, data):
    host, port, _ = running
    status, headers, body = await exchange(host, port, data)
    assert 400 <= status < 500
    assert headers["x-elastic-error"] == "usage"
    assert headers["server"] == "elastic-api"
    assert headers["content-type"].startswith("text/plain")
    assert body.decode().endswith("\n") and body.decode().count("\n") == 1, body
    assert SECRETISH.encode() not in body and b"Traceback" not in body


async def test_the_server_serves_on_after_refusing(running):
    host, port, auth = running
    await exchange(host, port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")  # a TLS hello
    request = f"GET /drives/list HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    status, headers, _ = await exchange(host, port, request.encode())
    assert status == 200 and "x-elastic-error" not in headers
