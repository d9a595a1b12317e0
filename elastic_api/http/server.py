"""Serving the app as `elastic-api serve` does: a header deadline on every connection, the
configured timeouts, and a graceful stop on SIGTERM or SIGINT."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from elastic_api.config import Config
from elastic_api.http.middleware import refused_message

log = logging.getLogger(__name__)

class BatchedLines(logging.Handler):
    """Formats each record at once and writes what gathered every `interval` seconds, in one
    write, from a thread of its own. Writing each line as it comes cost a busy server a sixth
    of its requests: every write gives up the interpreter lock on the event loop's thread,
    which then waits for a worker thread to hand it back. Lines reach the stream at most
    `interval` late and in order; closing the handler writes what is left."""

    def __init__(self, stream: IO[str], interval: float = 0.2, max_lines: int = 10_000) -> None:
        super().__init__()
        self.stream, self.interval, self.max_lines = stream, interval, max_lines
        self._lines: list[str] = []
        self._gathered = threading.Lock()  # guards _lines between emitters and the writer
        self._written = threading.Lock()  # keeps two writes of batches from interleaving
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._gathered:
            self._lines.append(line)
            full = len(self._lines) >= self.max_lines
        if full:  # a burst larger than memory should hold: written now, on the emitter's thread
            self.flush()

    def flush(self) -> None:
        with self._written:
            with self._gathered:
                lines, self._lines = self._lines, []
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # a closed or broken stream: the lines are lost, not the server
                    pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join()
        self.flush()
        super().close()


@contextlib.contextmanager
def batched_access_log(stream: IO[str]) -> Iterator[None]:
    """The access logger writes through a BatchedLines in the root handler's format while this
    is open; its lines no longer go through the root's handlers."""
    access = logging.getLogger("aiohttp.access")
    root_formats = [h.formatter for h in logging.getLogger().handlers if h.formatter is not None]
    handler = BatchedLines(stream)
    handler.setFormatter(root_formats[0] if root_formats else logging.Formatter())
    access.addHandler(handler)
    access.propagate = False
    try:
        yield
    finally:
        access.propagate = True
        access.removeHandler(handler)
        handler.close()


class AccessLog(AbstractAccessLogger):
    """One line per request: client, method and path, status, body bytes, seconds. aiohttp's own
    logger interprets a format string for every request, a tenth of a busy server's time; this
    one costs nothing when INFO is off. Headers (Authorization among them) are never logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %d %d %.6fs', request.remote, request.method, request.path_qs,
                         response.status, response.body_length, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _timeout_response(seconds: int) -> bytes:
    body = f"request line and headers not received within {seconds} seconds\n".encode()
    head = ("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"X-Elastic-Error: usage\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class HeaderDeadline(asyncio.Protocol):
    """One connection: aiohttp's own protocol inside, and a deadline on request headers around it.

    aiohttp bounds only the idle time between requests (keepalive_timeout); a client that sends
    a header byte now and then keeps a connection, and the memory of a half-parsed request, for
    as long as it likes. Here a timer starts when the connection opens and again at the first
    byte that arrives while no request is being handled; the app's `header_deadline` middleware
    stops it once a request's headers are parsed and it reaches the app. A timer that fires
    first answers 408 and closes the connection."""

    def __init__(self, inner: asyncio.Protocol, timeout: int, loop: asyncio.AbstractEventLoop,
                 lingering: float = 2.0) -> None:
        self._inner = inner
        self._timeout = timeout
        self._loop = loop
        self._lingering = lingering
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False
        self._closing = False  # the 408 is sent: what still arrives is read and dropped

    # -- what the middleware reports ---------------------------------------------------------
    def request_started(self) -> None:
        self._in_request = True
        self._disarm()

    def request_finished(self) -> None:
        self._in_request = False

    # -- the timer ----------------------------------------------------------------------------
    def _arm(self) -> None:
        self._timer = self._loop.call_later(self._timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if self._in_request or transport is None or transport.is_closing():
            return
        log.info("closing a connection from %s: no request headers within %d s",
                 transport.get_extra_info("peername"), self._timeout)
        transport.write(_timeout_response(self._timeout))
        # Closing a socket with unread bytes in it sends a reset, which can reach the client
        # before the 408 does (a trickling client always has some on the way). So: the answer,
        # then our end of the stream, then read and drop what comes until the client closes, or
        # for lingering_time at most.
        self._closing = True
        if transport.can_write_eof():
            transport.write_eof()
            self._timer = self._loop.call_later(self._lingering, transport.close)
        else:
            transport.close()

    # -- asyncio.Protocol, passed through ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._in_request and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._closing:
            return False  # the client has read our answer and closed: so do we
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


@web.middleware
async def header_deadline(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Tells the connection's HeaderDeadline (when it has one) that a request's headers are in."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    if not isinstance(guard, HeaderDeadline):
        return await handler(request)
    guard.request_started()
    try:
        return await handler(request)
    finally:
        guard.request_finished()


class _AnsweringInOurShape(web.RequestHandler):
    """aiohttp answers a message its parser refuses with its own plain text (which may quote the
    client's bytes); this answers it as every other error, with a status, an X-Elastic-Error
    word and one line. aiohttp's Server makes the handler, so each connection's handler takes
    this class after it is made (same slots, nothing added: only this method differs)."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # its logging, and its refusal once an answer began
        return refused_message(status)


def _answering_in_our_shape(handler: web.RequestHandler) -> web.RequestHandler:
    handler.__class__ = _AnsweringInOurShape
    return handler


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections each get a HeaderDeadline around aiohttp's protocol."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, header_timeout: int,
                 lingering: float = 2.0, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self.runner, self.host, self.port, self.header_timeout = runner, host, port, header_timeout
        self.lingering = lingering

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        factory = self.runner.server
        assert factory is not None, "the runner is not set up"
        self._server = await loop.create_server(
            lambda: HeaderDeadline(_answering_in_our_shape(factory()), self.header_timeout, loop,
                                   self.lingering),
            self.host, self.port, backlog=self._backlog, reuse_address=True)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])


def runner_options(config: Config) -> dict[str, Any]:
    """aiohttp's per-connection settings from the config."""
    # Content-Encoding: gzip is ours to stream through a bounded decoder, not aiohttp's.
    return {"auto_decompress": False, "access_log_class": AccessLog,
            "keepalive_timeout": config.keepalive_timeout, "lingering_time": config.lingering_time}


async def serve(app: web.Application, config: Config, host: str, port: int,
                ready: Callable[[GuardedSite], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop taking connections, let requests finish, and close."""
    runner = web.AppRunner(app, **runner_options(config))
    await runner.setup()
    try:
        site = GuardedSite(runner, host, port, header_timeout=config.header_timeout,
                           lingering=config.lingering_time)
        await site.start()
        if ready is not None:
            ready(site)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
