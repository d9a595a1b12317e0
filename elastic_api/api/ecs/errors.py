"""The ECS shape of an error (ECS.md §2.7): a status and `{"status": "error", "error_code":
STATUS, "message": LINE}`, whatever the client's Accept says. The one place this dialect maps
neutral error kinds to statuses (ECS.md §6)."""

from __future__ import annotations

from aiohttp import web

from elastic_api.errors import (
    Busy,
    ClientGone,
    Error,
    Failed,
    Full,
    Internal,
    Invalid,
    MethodNotAllowed,
    NotFound,
    QuotaExceeded,
    TooLarge,
    TooSlow,
    Unauthenticated,
    Unavailable,
    Unreachable,
)
from elastic_api.http.routes import ExpectationFailed

# The first kind in an error's class hierarchy that is listed here decides.
STATUSES: dict[type[Error], int] = {
    Invalid: 400,
    ExpectationFailed: 417,
    Unauthenticated: 401,
    QuotaExceeded: 403,  # Huawei's and Nova's convention; the ElasticHosts dialect keeps 402
    NotFound: 404,  # also what another user's object gets: existence must not leak
    MethodNotAllowed: 405,
    TooSlow: 408,
    Busy: 409,
    TooLarge: 413,
    ClientGone: 499,  # nginx's "client closed request": only the access log sees it
    Failed: 500,
    Unreachable: 503,
    Internal: 500,
    Unavailable: 503,
    Full: 507,
    Error: 500,
}
# What a client is told when it brings no token or a wrong one (RFC 6750).
CHALLENGE = 'Bearer realm="elastic-api"'


def status_of(error: Error) -> int:
    for kind in type(error).__mro__:
        if kind in STATUSES:
            return STATUSES[kind]
    return STATUSES[Error]


def error_body(status: int, message: str) -> dict[str, object]:
    return {"status": "error", "error_code": status, "message": message}


def error_response(error: Error) -> web.Response:
    status = status_of(error)
    headers = {}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = CHALLENGE
    return web.json_response(error_body(status, error.message), status=status, headers=headers)
