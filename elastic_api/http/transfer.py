"""What one request's answer put on the wire, and log lines that a flood cannot multiply.

The access log must say what the client saw: the body bytes that really went out (sendfile
bypasses aiohttp's writer, whose own count is the header's size then), the status whose head
went out, and whether the answer was cut off. A Transfer rides on each request and is filled
from three places: aiohttp's writer (every body byte it writes), send_file (what the kernel
sent), and the error answer of http.middleware (an answer aborted after it began)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_writer import StreamWriter

from elastic_api.http.sendfile import ThreadedSendfile


@dataclass(slots=True)
class Transfer:
    body_bytes: int = 0
    # The answer whose head went out (or is going out): once set, no other answer may follow.
    started: web.StreamResponse | None = None
    # The answer did not go out whole: the connection was closed under it.
    aborted: bool = False

    def count(self, size: int, _total: int = 0) -> None:
        """aiohttp's writer calls this with each body piece's size (framing not included)."""
        self.body_bytes += size


TRANSFER = web.RequestKey("transfer", Transfer)
# The application's sender threads (http/sendfile.py); without them, the loop's sendfile.
SENDFILE = web.AppKey("sendfile", ThreadedSendfile)


# What every answer says it comes from: the program, not the Python and aiohttp versions behind it.
SERVER = "elastic-api"


async def begin(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Send an answer's head (every answer's head goes out here, not through aiohttp's
    on_response_prepare signal, which cost a busy server a coroutine per answer): it names the
    program, and from now on this request's answer has begun (an error after this point aborts
    the connection rather than answering again: http.middleware)."""
    if not response.prepared:
        response.headers["Server"] = SERVER
        transfer(request).started = response
    await response.prepare(request)


class BodyFollows(web.StreamResponse):
    """An answer whose head waits in aiohttp's writer (aiohttp 3.11 and later keep it there for
    the body's first write) instead of going out at prepare: send_file sends head and bytes
    together from its thread. An empty body (HEAD, errors) sends it at write_eof as usual."""

    _send_headers_immediately = False


def _held_head(request: web.BaseRequest) -> bytes:
    """The prepared answer's head still held in aiohttp's writer, taken to be sent by us; empty
    when it went out already (an aiohttp that sends heads at prepare)."""
    writer = request.writer
    head = getattr(writer, "_headers_buf", None)
    if not isinstance(writer, StreamWriter) or not head or getattr(writer, "_headers_written", True):
        return b""
    writer._headers_buf = None
    writer._headers_written = True
    return bytes(head)


def transfer(request: web.BaseRequest) -> Transfer:
    """The request's Transfer, made and hooked to its writer on first use."""
    found = request.get(TRANSFER)
    if found is None:
        found = request[TRANSFER] = Transfer()
        request.writer.on_body_write = found.count
    return found


async def send_file(request: web.BaseRequest, opener: Callable[[], int], offset: int, length: int) -> None:
    """Send [offset, offset+length) of the file `opener()` opens after a prepared answer's head,
    zero-copy, and count what went even when the send fails part-way. A HEAD answer never
    carries these bytes. In a sender thread (http/sendfile.py), which also opens the file, when
    one is free; otherwise the loop's sendfile."""
    if request.method == "HEAD" or length <= 0:
        return
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client closed the connection")
    sender = request.config_dict.get(SENDFILE) if isinstance(request, web.Request) else None
    sock = transport.get_extra_info("socket")
    # The answer's head must be on the wire before bytes go around the transport: it almost
    # always is (a small write to an empty buffer goes out at once); otherwise, the loop's way.
    if sender is not None and sock is not None and not transport.get_write_buffer_size() and sender.try_take():
        try:
            await _send_threaded(request, transport, sender, sock.fileno(), opener, offset, length, _held_head(request))
        finally:
            sender.give_back()
        return
    head = _held_head(request)
    if head:
        transport.write(head)
    # A file object around the descriptor (no path to look up): asyncio's sendfile wants one.
    with os.fdopen(await asyncio.to_thread(opener), "rb") as file:
        file.seek(offset)
        try:
            # asyncio leaves the file's position just past the last byte sent.
            await asyncio.get_running_loop().sendfile(transport, file, offset, length)
        finally:
            transfer(request).body_bytes += max(0, file.tell() - offset)


async def _send_threaded(
    request: web.BaseRequest,
    transport: asyncio.Transport,
    sender: ThreadedSendfile,
    sock: int,
    opener: Callable[[], int],
    offset: int,
    length: int,
    head: bytes,
) -> None:
    # Reading goes on while the thread sends (asyncio's own sendfile pauses it, for two epoll
    # changes per answer, a tenth of a busy download loop): nothing here writes meanwhile, a
    # pipelined request only waits its turn, and a client that closes is seen at once.
    sent = 0
    try:
        sent = await sender.send(sock, opener, offset, length, transport.is_closing, head)
    finally:
        transfer(request).body_bytes += sent
        if sent < length:
            # Cut short (client gone, stalled, or cancelled): the framing is broken, so is the connection.
            transport.close()
    if sent < length:
        raise ConnectionResetError("the client stopped taking the answer")


@dataclass
class Occasional:
    """A logger for events that come in floods (descriptors running out, clients dropping
    connections, malformed messages): one line per `interval` seconds per kind of event, the
    next line saying how many were left out meanwhile."""

    logger: logging.Logger
    interval: float = 1.0
    _last: dict[str, float] = field(default_factory=dict)
    _left_out: dict[str, int] = field(default_factory=dict)

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        if left_out:
            message += f" ({left_out} more like it in the last {self.interval:g} s not logged)"
        self.logger.log(level, message, *args)
