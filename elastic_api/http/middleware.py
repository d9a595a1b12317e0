"""The one place errors become HTTP: every neutral error, aiohttp's own and the unexpected. The
shape of the answer is the dialect's: each route is served through `http.server.serving` with
its dialect's renderer, which calls `answer_error`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from elastic_api.errors import (
    ElasticError,
    InternalError,
    MethodError,
    MissingError,
    SlowClientError,
    TooLargeError,
    UsageError,
)
from elastic_api.http.transfer import SERVER, Occasional, transfer

log = logging.getLogger(__name__)
occasional = Occasional(log)
# The access log's status for a request whose client left before any answer began (nginx's).
CLIENT_GONE = 499


def from_aiohttp(error: web.HTTPException, request: web.Request) -> ElasticError:
    if isinstance(error, web.HTTPNotFound):
        return MissingError(f"no such command: {request.path[:80]}")
    if isinstance(error, web.HTTPMethodNotAllowed):
        return MethodError(f"{request.method} is not allowed here")
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return TooLargeError("request body too large")
    if 400 <= error.status < 500:
        return UsageError(error.reason or "bad request")
    return InternalError("internal error")


# A dialect's answer to an error: status, headers and body in its own shape.
Render = Callable[[ElasticError], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer_error(request: web.Request, e: Exception, render: Render) -> web.StreamResponse:
    """The answer to an error a dialect's handler raised, in the dialect's shape (`render`). An
    HTTPException below 400 (a redirect) is aiohttp's to answer: it is raised again."""
    cause: BaseException
    if isinstance(e, web.HTTPException):
        if e.status < 400:
            raise e
        error, cause = from_aiohttp(e, request), e
    else:
        if client_gone(request):  # whatever failed after, it failed for want of a client
            return left(request)
        # A ConnectionError here is a backend's connection (an NBD socket, say), not the client's.
        error, cause = (e if isinstance(e, ElasticError) else unexpected(request, e)), e
    started = transfer(request).started
    if started is not None:
        return abort(request, started, cause)
    response = render(error)
    if isinstance(error, SlowClientError):
        response.force_close()  # the rest of the body may never come: the connection cannot be reused
    return response


def unexpected(request: web.Request, e: BaseException) -> InternalError:
    """A bug or a backend's failure: its traceback is logged, unless the answer had begun (then
    abort's one line says what happened)."""
    if transfer(request).started is None:
        log.exception("internal error on %s %s", request.method, request.path)
    return InternalError("internal error; it has been logged")


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def left(request: web.Request) -> web.StreamResponse:
    """The client closed its connection: nobody to answer, nothing of ours failed. One line, and
    the access log shows the status the client saw (or CLIENT_GONE) marked aborted."""
    sent = transfer(request)
    sent.aborted = True
    occasional.log(
        logging.INFO,
        "client-gone",
        "%s left during %s %s after %d body bytes",
        request.remote,
        request.method,
        request.path,
        sent.body_bytes,
    )
    response = sent.started or web.Response(status=CLIENT_GONE)
    response.force_close()
    return response


def abort(request: web.Request, started: web.StreamResponse, cause: BaseException) -> web.StreamResponse:
    """An error after the answer's head went out: a second answer would be read as the first's
    body (or as the next request's answer), so the connection is closed under the first instead.
    The client sees a body shorter than its Content-Length, or a chunked body without its end."""
    sent = transfer(request)
    sent.aborted = True
    what = (
        f"{type(cause).__name__}: {cause.message}"
        if isinstance(cause, ElasticError)
        else f"{type(cause).__name__}: {' '.join(str(cause).split())}"
    )
    log.warning(
        "aborted the answer to %s %s from %s after %d body bytes: %s",
        request.method,
        request.path,
        request.remote,
        sent.body_bytes,
        what,
    )
    if request.transport is not None:
        request.transport.close()
    started.force_close()
    return started


def refused_message(status: int, render: Render) -> web.Response:
    """The answer to what aiohttp itself refuses before any middleware runs: a message its parser
    cannot read (a bad request line, control characters in a header, a header too long). The
    client's bytes are not echoed, and the connection is closed, as aiohttp would."""
    error = (
        UsageError("the request is not valid HTTP/1.1: check its request line and headers")
        if 400 <= status < 500
        else InternalError("internal error; it has been logged")
    )
    response = render(error)
    response.set_status(status)
    response.headers["Server"] = SERVER
    response.force_close()
    return response
