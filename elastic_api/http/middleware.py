"""The one place errors become HTTP: every ElasticError, aiohttp's own and the unexpected."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from elastic_api.errors import (
    AuthError, ElasticError, InternalError, MethodError, MissingError, SlowClientError, TooLargeError,
    UsageError,
)
from elastic_api.http.auth import REALM
from elastic_api.http.negotiate import error_response

log = logging.getLogger(__name__)


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


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except ElasticError as e:
        error = e
    except web.HTTPException as e:
        if e.status < 400:
            raise
        error = from_aiohttp(e, request)
    except ConnectionResetError:
        raise  # the client went away; there is nobody to answer
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        error = InternalError("internal error; it has been logged")
    response = error_response(error)
    if isinstance(error, AuthError):
        response.headers["WWW-Authenticate"] = REALM
    if isinstance(error, SlowClientError):
        response.force_close()  # the rest of the body may never come: the connection cannot be reused
    return response


def refused_message(status: int) -> web.Response:
    """The answer to what aiohttp itself refuses before any middleware runs: a message its parser
    cannot read (a bad request line, control characters in a header, a header too long). The
    client's bytes are not echoed, and the connection is closed, as aiohttp would."""
    error = (UsageError("the request is not valid HTTP/1.1: check its request line and headers")
             if 400 <= status < 500 else InternalError("internal error; it has been logged"))
    response = error_response(error)
    response.set_status(status)
    response.headers["Server"] = "elastic-api"
    response.force_close()
    return response


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names the program, not the Python and aiohttp versions behind it."""
    response.headers["Server"] = "elastic-api"
