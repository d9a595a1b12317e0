"""Serving the app as `elastic-api serve` does: a header deadline on every connection, the
configured timeouts, and a graceful stop on SIGTERM or SIGINT: requests in flight finish within
shutdown_grace, idle connections are closed and new ones refused."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from elastic_api.config import Config, parse_listen
from elastic_api.errors import UsageError
from elastic_api.http.access_log import AccessLog
from elastic_api.http.metrics import OPS_METRICS, start_metrics
from elastic_api.http.middleware import Render, answer_error, client_gone, refused_message
from elastic_api.http.transfer import Occasional, begin, transfer

log = logging.getLogger(__name__)
occasional = Occasional(log)


def _timeout_response(seconds: int) -> bytes:
    body = f"request line and headers not received within {seconds} seconds\n".encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"X-Elastic-Error: usage\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderDeadline(asyncio.Protocol):
    """One connection: aiohttp's own protocol inside, a deadline on request headers around it, and
    what aiohttp's protocol does not do for us at a client's half-close and at shutdown.

    aiohttp bounds only the idle time between requests (keepalive_timeout); a client that sends
    a header byte now and then keeps a connection, and the memory of a half-parsed request, for
    as long as it likes. Here a timer starts when the connection opens and again at the first
    byte that arrives while no request is being handled; `serving`
    stops it once a request's headers are parsed and it reaches the app. A timer that fires
    first answers 408 and closes the connection.

    A client that shuts down its sending side (a `shutdown(SHUT_WR)` after its body, or in the
    middle of one) still reads: the connection stays open for the answer, a body cut short ends
    in 400, and the connection closes after that answer. At shutdown (`drain`) an idle connection
    is closed at once and a busy one after its answer."""

    def __init__(
        self,
        inner: web.RequestHandler,
        timeout: int,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[HeaderDeadline], None] | None = None,
        lingering: float = 2.0,
    ) -> None:
        self._inner = inner
        self._lingering = lingering
        self._timed_out = False  # the 408 is sent: what still arrives is read and dropped
        self._on_lost = on_lost
        self._timeout = timeout
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        # When the headers being awaited are due (loop time), or None while none are awaited.
        self._deadline: float | None = None
        self._request: web.BaseRequest | None = None
        self._pending = False  # bytes came since the last request was handled: one may be on its way
        self._answered = False  # a request was answered: the connection is a kept-alive one
        self.client_done = False  # the client shut down its sending side
        self.closing = False  # the server is stopping: close after the answer in progress
        self.closed = asyncio.Event()

    # -- what `serving` reports -------------------------------------------------------------
    def request_started(self, request: web.BaseRequest) -> None:
        self._request = request
        self._pending = False
        self._disarm()
        if self.client_done:
            _end_body(request)

    def request_finished(self) -> None:
        self._request = None
        self._answered = True

    def drain(self) -> None:
        """The server is stopping: no new request on this connection. One idle after an answer
        is closed now (a client reusing it may find it closed, as with keepalive_timeout, and
        retries); a fresh one may still be bringing its first request, which is served within
        header_timeout, and the connection closed after it."""
        self.closing = True
        if self._answered and self._request is None and not self._pending and self._transport is not None:
            self._transport.close()

    # -- the timer ----------------------------------------------------------------------------
    # A kept-alive connection arms and disarms the deadline once per request: moving a number is
    # cheap, a timer made and cancelled each time was not. The one timer there is fires when
    # the deadline it was made for comes, and then follows the deadline if it moved.
    def _arm(self) -> None:
        self._deadline = self._loop.time() + self._timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expired)

    def _disarm(self) -> None:
        self._deadline = None

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:  # disarmed since: the next arming makes a timer anew
            return
        if deadline > self._loop.time():  # re-armed since: wait for the later deadline
            self._timer = self._loop.call_at(deadline, self._expired)
            return
        transport = self._transport
        if self._request is not None or transport is None or transport.is_closing():
            return
        occasional.log(
            logging.INFO,
            "header-timeout",
            "closing a connection from %s: no request headers within %d s",
            transport.get_extra_info("peername"),
            self._timeout,
        )
        transport.write(_timeout_response(self._timeout))
        # Closing a socket with unread bytes in it sends a reset, which can reach the client
        # before the 408 does (a trickling client always has some on the way). So: the answer,
        # then our end of the stream, then read and drop what comes until the client closes, or
        # for lingering_time at most.
        self._timed_out = True
        self._deadline = None
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
        if self._timed_out:
            return
        if self._request is None:
            self._pending = True
            if self._deadline is None:
                self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._timed_out:
            return False  # the client has read our answer and closed: so do we
        self.client_done = True
        if self._request is not None:
            _end_body(self._request)
            return True  # the answer still has to go out
        if self._pending:
            return True  # a request may be queued; a half-sent one meets the header deadline
        self._inner.eof_received()
        return None  # idle: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._transport = None
        self._inner.connection_lost(exc)
        self.closed.set()
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _end_body(request: web.BaseRequest) -> None:
    """The client sent all it will: a body still short of its length ends in a 400, not a wait."""
    content = request.content
    if not content.is_eof():
        content.set_exception(
            UsageError(
                "the request body ended before its Content-Length: the client shut down its side of the connection"
            )
        )
        content.feed_eof()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def serving(handler: Handler, render: Render) -> Handler:
    """A route's handler as aiohttp calls it: what was two middlewares around every request, in
    one call made at route registration (a middleware chain cost a busy server a tenth of a
    small read). Errors become answers in the dialect's shape (`render`, middleware.answer_error);
    the connection's HeaderDeadline (when it has one) is told that a request's headers are in
    and when its answer is out, and the answer is written here so that the connection counts
    as busy until then. An answer goes out with Connection: close when the server is stopping
    or the client has shut down its side."""

    async def serve(request: web.Request) -> web.StreamResponse:
        sent = transfer(request)
        transport = request.transport
        guard = transport.get_protocol() if transport is not None else None
        if not isinstance(guard, HeaderDeadline):
            guard = None
        else:
            guard.request_started(request)
        try:
            try:
                response = await handler(request)
            except Exception as e:
                response = answer_error(request, e, render)
            if guard is not None and (guard.closing or guard.client_done):
                response.force_close()
            try:
                await begin(request, response)
                await response.write_eof()
            except ConnectionError:
                if not client_gone(request):
                    raise
                response.force_close()
                if not sent.aborted:  # else answer_error closed it, and has said why
                    sent.aborted = True
                    occasional.log(
                        logging.INFO,
                        "client-gone",
                        "%s left before the answer to %s %s went out",
                        request.remote,
                        request.method,
                        request.path,
                    )
            return response
        finally:
            if guard is not None:
                guard.request_finished()

    serve.__name__ = getattr(handler, "__name__", "serve")
    return serve


class _AnsweringInOurShape(web.RequestHandler):
    """aiohttp answers a message its parser refuses with its own plain text (which may quote the
    client's bytes), and logs a traceback for it; this answers it as every other error, with a
    status, an X-Elastic-Error word and one line, and logs one line (at most one a second). An
    exception that escaped the app (a bug) keeps its traceback. aiohttp's Server makes the
    handler, so each connection's handler takes this class after it is made (same slots,
    nothing added: only this method differs)."""

    __slots__ = ()
    render: Render  # the root dialect's error shape, set on the class made for each site

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if 400 <= status < 500:
            # The parser's message may quote the client's bytes (an Authorization line among
            # them), so only its kind is logged.
            occasional.log(
                logging.INFO,
                "refused",
                "refused a message from %s: %d %s",
                request.remote,
                status,
                type(exc).__name__ if exc is not None else "unreadable",
            )
        else:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:  # an answer began: there is no second one
            raise ConnectionError("an answer was already sent, the connection cannot carry another")
        return refused_message(status, type(self).render)


# The application's renderer for messages refused before any route is known: the root dialect's.
REFUSAL: web.AppKey[Render] = web.AppKey("refusal")


def _answering_class(render: Render) -> type[_AnsweringInOurShape]:
    return type("AnsweringInOurShape", (_AnsweringInOurShape,), {"__slots__": (), "render": staticmethod(render)})


def _answering_in_our_shape(handler: web.RequestHandler, cls: type[_AnsweringInOurShape]) -> web.RequestHandler:
    handler.__class__ = cls
    return handler


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections each get a HeaderDeadline around aiohttp's protocol."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        header_timeout: int,
        lingering: float = 2.0,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.runner, self.host, self.port, self.header_timeout = runner, host, port, header_timeout
        self.lingering = lingering
        self.connections: set[HeaderDeadline] = set()
        self._answering: type[_AnsweringInOurShape] | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _connection(self, loop: asyncio.AbstractEventLoop) -> HeaderDeadline:
        factory = self.runner.server
        assert factory is not None, "the runner is not set up"
        assert self._answering is not None, "the site is not started"
        guard = HeaderDeadline(
            _answering_in_our_shape(factory(), self._answering),
            self.header_timeout,
            loop,
            on_lost=self.connections.discard,
            lingering=self.lingering,
        )
        self.connections.add(guard)
        return guard

    async def start(self) -> None:
        await super().start()
        assert isinstance(self.runner, web.AppRunner)
        self._answering = _answering_class(self.runner.app[REFUSAL])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._connection(loop), self.host, self.port, backlog=self._backlog, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def drain(self, grace: float, cut_short: asyncio.Event) -> int:
        """Stop listening (new connections are refused), close idle connections, and wait up to
        `grace` seconds (or until cut_short is set) for the requests in flight to be answered.
        Returns how many connections were still open at the end."""
        if self._server is not None:
            self._server.close()
        for guard in list(self.connections):
            guard.drain()
        open_ones = list(self.connections)
        if open_ones:

            async def all_closed() -> None:
                for guard in open_ones:
                    await guard.closed.wait()

            waiting = [asyncio.ensure_future(all_closed()), asyncio.ensure_future(cut_short.wait())]
            try:
                await asyncio.wait(waiting, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waiting:
                    task.cancel()
        return sum(1 for guard in open_ones if not guard.closed.is_set())


def runner_options(config: Config) -> dict[str, Any]:
    """aiohttp's per-connection settings from the config."""
    # Content-Encoding: gzip is ours to stream through a bounded decoder, not aiohttp's.
    return {
        "auto_decompress": False,
        "access_log_class": AccessLog,
        "keepalive_timeout": config.keepalive_timeout,
        "lingering_time": config.lingering_time,
    }


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio logs a traceback for every accept that fails for want of descriptors (EMFILE), many
    a millisecond under a flood; one line a second with a count says the same."""
    if "accept" in str(context.get("message", "")) and isinstance(context.get("exception"), OSError):
        exc = context["exception"]
        occasional.log(logging.ERROR, "accept", "cannot accept connections: %s", exc.strerror or exc)
        return
    loop.default_exception_handler(context)


async def serve(
    app: web.Application, config: Config, host: str, port: int, ready: Callable[[GuardedSite], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop taking connections, let requests finish within
    shutdown_grace (a second signal cuts it short), and close."""
    # Our drain has waited already: what is left after it is cut off at once.
    runner = web.AppRunner(app, shutdown_timeout=1.0, **runner_options(config))
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_accept_errors)
    await runner.setup()
    metrics: web.AppRunner | None = None
    try:
        if OPS_METRICS in app and config.metrics_listen:  # after setup: the store it reads is open
            metrics = await start_metrics(app[OPS_METRICS], *parse_listen(config.metrics_listen))
        site = GuardedSite(runner, host, port, header_timeout=config.header_timeout, lingering=config.lingering_time)
        await site.start()
        if ready is not None:
            ready(site)
        stop, again = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, again.set)
        busy = len(site.connections)
        log.info("stopping: no new connections; %d open ones get up to %d s to finish", busy, config.shutdown_grace)
        began = time.monotonic()
        left_open = await site.drain(config.shutdown_grace, again)
        log.info(
            "stopped taking requests after %.1f s%s",
            time.monotonic() - began,
            f"; cutting off {left_open} connections" if left_open else "",
        )
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await runner.cleanup()
