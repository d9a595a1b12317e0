"""The one route table: every endpoint, its method rule and its handler on one screen."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from elastic_api.errors import MethodError, MissingError, UsageError
from elastic_api.http.call import Call
from elastic_api.http.handlers import drives, resources, servers
from elastic_api.http.negotiate import Result, error_response, render

# Reads accept GET and POST (real clients POST every command); changes accept POST only.
READ, CHANGE = "read", "change"
READ_METHODS = frozenset({"GET", "HEAD", "POST"})

Handler = Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True)
class Route:
    rule: str
    path: str
    handler: Handler


# Fixed paths come before the patterns they would otherwise match (aiohttp tries in order).
ROUTES: tuple[Route, ...] = (
    Route(READ,   "/drives/list",                            drives.list_drives),
    Route(READ,   "/drives/info",                            drives.info_drives),
    Route(READ,   "/drives/list/standard",                   drives.list_standard),
    Route(READ,   "/drives/info/standard",                   drives.info_standard),
    Route(READ,   "/drives/standard/info",                   drives.info_standard),
    Route(CHANGE, "/drives/create",                          drives.create),
    Route(READ,   "/drives/{drive}/info",                    drives.info),
    Route(READ,   "/drives/{drive}/info/full",               drives.info),
    Route(CHANGE, "/drives/{drive}/set",                     drives.set_),
    Route(CHANGE, "/drives/{drive}/destroy",                 drives.destroy),
    Route(READ,   "/drives/{drive}/read/{offset}/{size}",    drives.read),
    Route(READ,   "/drives/{drive}/checksum",                drives.checksum),
    Route(READ,   "/drives/{drive}/checksum/{offset}/{size}", drives.checksum),
    Route(CHANGE, "/drives/{drive}/write",                   drives.write),
    Route(CHANGE, "/drives/{drive}/write/{offset}",          drives.write),
    Route(CHANGE, "/drives/{drive}/image/{source}",          drives.image),
    Route(CHANGE, "/drives/{drive}/image/{source}/{conversion}", drives.image),
    Route(READ,   "/servers/list",                           servers.list_servers),
    Route(READ,   "/servers/info",                           servers.info_servers),
    Route(CHANGE, "/servers/create",                         servers.create),
    Route(CHANGE, "/servers/create/stopped",                 servers.create_stopped),
    Route(READ,   "/servers/{server}/info",                  servers.info),
    Route(CHANGE, "/servers/{server}/set",                   servers.set_),
    Route(CHANGE, "/servers/{server}/start",                 servers.start),
    Route(CHANGE, "/servers/{server}/stop",                  servers.stop),
    Route(CHANGE, "/servers/{server}/shutdown",              servers.shutdown),
    Route(CHANGE, "/servers/{server}/reset",                 servers.reset),
    Route(CHANGE, "/servers/{server}/destroy",               servers.destroy),
    Route(READ,   "/resources/list",                         resources.list_all),
    Route(READ,   "/resources/info",                         resources.info_all),
    Route(READ,   "/resources/{type}/list",                  resources.list_type),
    Route(READ,   "/resources/{type}/info",                  resources.info_type),
    Route(CHANGE, "/resources/{type}/create",                resources.create),
    Route(READ,   "/resources/{type}/{resource}/info",       resources.info),
    Route(CHANGE, "/resources/{type}/{resource}/set",        resources.set_),
    Route(CHANGE, "/resources/{type}/{resource}/destroy",    resources.destroy),
)


def allowed(rule: str, method: str) -> bool:
    return method in READ_METHODS if rule == READ else method == "POST"


def endpoint(route: Route, make_call: Callable[[web.Request], Awaitable[Call]]) -> Callable[
        [web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        call = await make_call(request)
        if not allowed(route.rule, request.method):
            raise MethodError(f"{request.method} is not allowed here: this command changes state, use POST")
        return render(request, await route.handler(call))

    handle.__name__ = route.handler.__name__
    return handle


async def expect_later(request: web.Request) -> web.StreamResponse | None:
    """aiohttp answers `Expect: 100-continue` as soon as a route matches, before authentication;
    here only an expectation we cannot meet is answered (417). 100 Continue goes out when a
    handler first reads the body (Call.props, Call.body): after authentication and its checks,
    so a refused client never sends its body."""
    if request.headers.get("Expect", "").strip().lower() in ("", "100-continue"):
        return None
    response = error_response(UsageError("the only expectation understood is 100-continue"))
    response.set_status(417)
    response.force_close()
    return response


async def no_such_command(request: web.Request) -> web.StreamResponse:
    raise MissingError(f"no such command: {request.path[:80]}")


def add_routes(app: web.Application, make_call: Callable[[web.Request], Awaitable[Call]]) -> None:
    for route in ROUTES:
        app.router.add_route("*", route.path, endpoint(route, make_call), expect_handler=expect_later)
    # Last, for every path that is no command: aiohttp's own "not found" would answer an
    # `Expect: 100-continue` with 100 before its 404, and the client would send its body for nothing.
    app.router.add_route("*", "/{path:.*}", no_such_command, expect_handler=expect_later)
