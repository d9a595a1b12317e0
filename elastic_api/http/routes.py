"""Routes of any dialect: a path, the methods it answers, who may call it and its handler.

A dialect writes its table as a tuple of `Route`s and mounts it with `add_routes`; the table is
the one place that says, for every endpoint, which methods and which authentication it takes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from elastic_api.errors import Invalid, MethodNotAllowed, NotFound
from elastic_api.http.audit import Auditor
from elastic_api.http.middleware import Render
from elastic_api.http.server import serving
from elastic_api.http.transfer import SERVER

P = TypeVar("P")  # what an auth policy yields: the caller, as the dialect knows it

# An authentication policy: the caller of a request, or Unauthenticated. `PUBLIC` routes have none.
Auth = Callable[[web.Request], Awaitable[P]]
Handler = Callable[[web.Request, P], Awaitable[web.StreamResponse]]


async def public(request: web.Request) -> None:
    """The policy of a route anyone may call (a login, say): no caller."""
    return None


@dataclass(frozen=True)
class Route(Generic[P]):
    methods: frozenset[str]
    path: str
    auth: Auth[P]
    handler: Handler[P]
    name: str = ""
    audited: bool = False  # it changes something: each call is recorded in the audit trail (http/audit.py)


def endpoint(
    routes: Sequence[Route[P]], auditor: Auditor[P] | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """One aiohttp handler for every route of one path: the caller is authenticated by the
    policy of the path's first route before the method is looked at, so a client without
    credentials learns nothing about which methods a path takes."""
    first = routes[0]
    by_method = {method: route for route in routes for method in route.methods}
    allowed = sorted(by_method)

    async def handle(request: web.Request) -> web.StreamResponse:
        route = by_method.get(request.method)
        caller = await (route or first).auth(request)
        if route is None:
            raise MethodNotAllowed(f"{request.method} is not allowed here; use {' or '.join(allowed)}")
        if auditor is not None and route.audited:
            return await auditor.call(request, route.path, caller, route.handler)
        return await route.handler(request, caller)

    handle.__name__ = first.name or getattr(first.handler, "__name__", "endpoint")
    return handle


async def expect_later(request: web.Request) -> web.StreamResponse | None:
    """aiohttp answers `Expect: 100-continue` as soon as a route matches, before authentication;
    here only an expectation we cannot meet is answered (417). 100 Continue goes out when a
    handler first reads the body (http.body): after authentication and its checks, so a refused
    client never sends its body."""
    if request.headers.get("Expect", "").strip().lower() in ("", "100-continue"):
        return None
    raise ExpectationFailed("the only expectation understood is 100-continue")


class ExpectationFailed(Invalid):
    """An `Expect` header other than 100-continue (answered 417 by every dialect)."""


class AnyPath(web.DynamicResource):
    """The catch-all's resource: every path, those its pattern's `.*` does not match (a newline
    in a segment, a request target without its `/`) included. With no middleware to answer
    aiohttp's own "not found", no path may be left to it: it would answer in its own words."""

    def _match(self, path: str) -> dict[str, str] | None:
        return super()._match(path) or {"path": path}


async def no_such_path(request: web.Request) -> web.StreamResponse:
    raise NotFound(f"no such command: {request.path[:80]}")


def add_routes(
    app: web.Application,
    routes: Sequence[Route[P]],
    render: Render,
    *,
    catch_all: bool = True,
    auditor: Auditor[P] | None = None,
) -> None:
    """Mount a route table; paths keep the table's order (aiohttp tries them in order, so fixed
    paths come before the patterns they would otherwise match). Every handler is served through
    `serving` with the dialect's error shape: no middleware runs on the way."""
    by_path: dict[str, list[Route[P]]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)

    async def expect(request: web.Request) -> web.StreamResponse | None:
        return await _expect(request, render)

    for path, group in by_path.items():
        app.router.add_route("*", path, serving(endpoint(group, auditor), render), expect_handler=expect)
    if catch_all:
        # Last, for every path that is no command: aiohttp's own "not found" would answer an
        # `Expect: 100-continue` with 100 before its 404, and the client would send its body for nothing.
        catch_all_resource = AnyPath("/{path:.*}")
        app.router.register_resource(catch_all_resource)
        catch_all_resource.add_route("*", serving(no_such_path, render), expect_handler=expect)


async def _expect(request: web.Request, render: Render) -> web.StreamResponse | None:
    try:
        return await expect_later(request)
    except ExpectationFailed as e:
        response = render(e)
        response.headers["Server"] = SERVER  # aiohttp sends it, not `serving`
        response.set_status(417)
        response.force_close()
        return response
