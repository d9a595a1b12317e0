"""The ElasticHosts shape of an error: a status, an `X-Elastic-Error` word and one line of text
(PROTOCOL.md's table). The one place this dialect maps neutral error kinds to its answers."""

from __future__ import annotations

from aiohttp import web

from elastic_api.api.elastichosts.auth import REALM
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

# The ElasticHosts answer to each error kind: status and X-Elastic-Error word (PROTOCOL.md's table).
# The first kind in an error's class hierarchy that is listed here decides.
ANSWERS: dict[type[Error], tuple[int, str]] = {
    Invalid: (400, "usage"),
    Unauthenticated: (401, "auth"),
    QuotaExceeded: (402, "billing"),
    NotFound: (404, "missing"),
    MethodNotAllowed: (405, "method"),
    TooSlow: (408, "usage"),
    Busy: (409, "busy"),
    TooLarge: (413, "usage"),
    ClientGone: (499, "usage"),  # nginx's "client closed request": only the access log sees it
    Failed: (500, "failed"),
    # 503, not 507: no host is full; the word stays `failed`, PROTOCOL.md's table has no other.
    Unreachable: (503, "failed"),
    Internal: (500, "system"),
    Unavailable: (503, "busy"),
    Full: (507, "full"),
    Error: (500, "system"),
}


def answer_of(error: Error) -> tuple[int, str]:
    """(status, X-Elastic-Error word) for an error of any kind."""
    for kind in type(error).__mro__:
        if kind in ANSWERS:
            return ANSWERS[kind]
    return ANSWERS[Error]


def error_response(error: Error) -> web.Response:
    status, word = answer_of(error)
    headers = {"X-Elastic-Error": word}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = REALM
    return web.Response(status=status, text=error.message + "\n", content_type="text/plain", headers=headers)
