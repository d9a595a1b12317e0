"""A loopback HTTP proxy in front of the real server that fails, slows or corrupts requests on cue."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter

import aiohttp
from aiohttp import web

# Headers about one hop's connection, never forwarded.
HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


class FaultProxy:
    """Requests whose path contains a fragment get that fragment's queued faults first, one each."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.faults: dict[str, list[str]] = {}
        self.delays: dict[str, float] = {}
        self.corrupt: set[str] = set()
        self.seen: Counter[str] = Counter()
        self.log: list[tuple[str, str, int]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def fail(self, fragment: str, *actions: str) -> None:
        """Queue faults: `503` (with Retry-After: 1), `500`, `400`, `404`, `reset`, `short`."""
        self.faults.setdefault(fragment, []).extend(actions)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=256 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # Bodies pass through as sent: a gzipped write must reach the server still gzipped.
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _fragments(self, path: str) -> list[str]:
        return [f for f in {*self.faults, *self.delays, *self.corrupt, "/write/", "/read/", "/checksum/"} if f in path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fragments = self._fragments(request.path)
        self.seen.update(fragments)
        for fragment in fragments:
            if self.delays.get(fragment):
                await asyncio.sleep(self.delays[fragment])
        action = next((self.faults[f].pop(0) for f in fragments if self.faults.get(f)), "")
        if action == "reset":
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:
                # Linger 0: closing sends RST, a real "connection reset by peer".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            assert request.transport is not None
            request.transport.abort()
            self.log.append((request.method, request.path, 0))
            return web.Response(status=500)
        if action in ("400", "404", "500", "503"):
            status = int(action)
            word = {400: "usage", 404: "missing", 500: "system", 503: "busy"}[status]
            headers = {"X-Elastic-Error": word, **({"Retry-After": "1"} if status == 503 else {})}
            self.log.append((request.method, request.path, status))
            return web.Response(status=status, text=f"injected {status}\n", headers=headers)
        corrupt = any(f in self.corrupt for f in fragments)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        if corrupt:
            headers["Accept-Encoding"] = "identity"
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            data = await upstream.read()
            reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
            status = upstream.status
        if corrupt and data and status == 200:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]
        if action == "short" and len(data) > 1:
            data = data[: len(data) // 2]
        self.log.append((request.method, request.path, status))
        return web.Response(status=status, body=data, headers=reply_headers)
