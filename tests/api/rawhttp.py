"""Raw HTTP/1.1 over a socket, for tests that must see exactly what the server put on the wire:
where one answer ends and the next begins, interim answers, a connection closed mid-body."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import yaml


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    head: bytes

    @property
    def error(self) -> str | None:
        return self.headers.get("x-elastic-error")


@dataclass
class Target:
    host: str
    port: int
    auth: str

    @classmethod
    def of(cls, config_path, user: str, secret: str) -> Target:
        host, port = yaml.safe_load(config_path.read_text())["listen"].rsplit(":", 1)
        return cls(host, int(port), "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return Connection(self, reader, writer)


class Connection:
    def __init__(self, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.target, self.reader, self.writer = target, reader, writer

    def request_bytes(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        auth: str | None = None,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Authorization: {auth or self.target.auth}"]
        extra = dict(headers or {})
        if "Transfer-Encoding" not in extra:
            extra.setdefault("Content-Length", str(len(body) if length is None else length))
        lines += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, method: str, path: str, body: bytes = b"", **kw) -> None:
        self.writer.write(self.request_bytes(method, path, body, **kw))
        await self.writer.drain()

    async def head_of_answer(self, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {n.strip().lower(): v.strip() for n, _, v in (line.partition(":") for line in lines if line)}
        return int(status_line.split()[1]), headers, head

    async def answer(self, *, head_only: bool = False, timeout: float = 30) -> Answer:
        """One answer: its head, and its body as Content-Length or chunked framing says (none for
        a HEAD's answer or a 1xx/204/304)."""
        status, headers, head = await self.head_of_answer(timeout)
        if head_only or status in (204, 304) or status < 200:
            return Answer(status, headers, b"", head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await asyncio.wait_for(self.reader.readline(), timeout)).split(b";")[0], 16)
                if size == 0:
                    await asyncio.wait_for(self.reader.readline(), timeout)
                    return Answer(status, headers, bytes(body), head)
                body += await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
                del body[-2:]
        length = int(headers.get("content-length", "0"))
        return Answer(status, headers, await asyncio.wait_for(self.reader.readexactly(length), timeout), head)

    async def ask(
        self, method: str, path: str, body: bytes = b"", *, head_only: bool = False, timeout: float = 30, **kw
    ) -> Answer:
        await self.send(method, path, body, **kw)
        return await self.answer(head_only=head_only or method == "HEAD", timeout=timeout)

    async def rest(self, timeout: float = 30) -> bytes:
        """Everything until the server closes the connection (TimeoutError if it does not)."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    def close(self) -> None:
        self.writer.close()
