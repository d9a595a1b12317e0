"""The ElasticHosts route table: every endpoint, its methods, its auth policy and its handler on one screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from elastic_api.api.elastichosts.auth import BASIC, Policy, basic
from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.errors import error_response
from elastic_api.api.elastichosts.handlers import drives, metrics, resources, servers
from elastic_api.api.elastichosts.negotiate import RenderedTexts, Result, render
from elastic_api.config import Config
from elastic_api.http import routes as http
from elastic_api.http.audit import Auditor
from elastic_api.model.audit import Actor, Credential
from elastic_api.service.services import Services

# Reads accept GET and POST (real clients POST every command); changes accept POST only; any
# other method is 405 `method`, after authentication.
READ = frozenset({"GET", "HEAD", "POST"})
CHANGE = frozenset({"POST"})

Handler = Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    auth: Policy
    path: str
    handler: Handler


# Fixed paths come before the patterns they would otherwise match (aiohttp tries in order);
# the hottest patterns, info and reads, come first among the drives' (each one tried costs a regex).
# The table is read by columns (methods, policy, path, handler): the formatter leaves it aligned.
# fmt: off
ROUTES: tuple[Route, ...] = (
    Route(READ,   BASIC, "/drives/list",                            drives.list_drives),
    Route(READ,   BASIC, "/drives/info",                            drives.info_drives),
    Route(READ,   BASIC, "/drives/list/standard",                   drives.list_standard),
    Route(READ,   BASIC, "/drives/info/standard",                   drives.info_standard),
    Route(READ,   BASIC, "/drives/standard/info",                   drives.info_standard),
    Route(CHANGE, BASIC, "/drives/create",                          drives.create),
    Route(READ,   BASIC, "/drives/{drive}/info",                    drives.info),
    Route(READ,   BASIC, "/drives/{drive}/read/{offset}/{size}",    drives.read),
    Route(READ,   BASIC, "/drives/{drive}/info/full",               drives.info),
    Route(CHANGE, BASIC, "/drives/{drive}/set",                     drives.set_),
    Route(CHANGE, BASIC, "/drives/{drive}/destroy",                 drives.destroy),
    Route(READ,   BASIC, "/drives/{drive}/checksum",                drives.checksum),
    Route(READ,   BASIC, "/drives/{drive}/checksum/{offset}/{size}", drives.checksum),
    Route(CHANGE, BASIC, "/drives/{drive}/write",                   drives.write),
    Route(CHANGE, BASIC, "/drives/{drive}/write/{offset}",          drives.write),
    Route(CHANGE, BASIC, "/drives/{drive}/image/{source}",          drives.image),
    Route(CHANGE, BASIC, "/drives/{drive}/image/{source}/{conversion}", drives.image),
    Route(READ,   BASIC, "/servers/list",                           servers.list_servers),
    Route(READ,   BASIC, "/servers/info",                           servers.info_servers),
    Route(CHANGE, BASIC, "/servers/create",                         servers.create),
    Route(CHANGE, BASIC, "/servers/create/stopped",                 servers.create_stopped),
    Route(READ,   BASIC, "/servers/{server}/info",                  servers.info),
    Route(CHANGE, BASIC, "/servers/{server}/set",                   servers.set_),
    Route(CHANGE, BASIC, "/servers/{server}/start",                 servers.start),
    Route(CHANGE, BASIC, "/servers/{server}/stop",                  servers.stop),
    Route(CHANGE, BASIC, "/servers/{server}/shutdown",              servers.shutdown),
    Route(CHANGE, BASIC, "/servers/{server}/reset",                 servers.reset),
    Route(CHANGE, BASIC, "/servers/{server}/destroy",               servers.destroy),
    Route(READ,   BASIC, "/servers/{server}/metrics",               metrics.server_metrics),
    Route(READ,   BASIC, "/resources/list",                         resources.list_all),
    Route(READ,   BASIC, "/resources/info",                         resources.info_all),
    Route(READ,   BASIC, "/resources/{type}/list",                  resources.list_type),
    Route(READ,   BASIC, "/resources/{type}/info",                  resources.info_type),
    Route(CHANGE, BASIC, "/resources/{type}/create",                resources.create),
    Route(READ,   BASIC, "/resources/{type}/{resource}/info",       resources.info),
    Route(CHANGE, BASIC, "/resources/{type}/{resource}/set",        resources.set_),
    Route(CHANGE, BASIC, "/resources/{type}/{resource}/destroy",    resources.destroy),
)
# fmt: on


def mount(app: web.Application, services: Services, config: Config) -> None:
    """The table on `app`, each route behind its auth policy, errors in this dialect's shape."""
    policies = {BASIC: basic(services.users)}
    # Two texts (plain and JSON) for each drive row the store may keep in memory.
    texts = RenderedTexts(2 * config.db_cached_rows)

    def bind(route: Route) -> http.Route[str]:
        async def handle(request: web.Request, user: str) -> web.StreamResponse:
            return render(request, await route.handler(Call(request, user, services, config)), texts)

        return http.Route(
            route.methods,
            route.path,
            policies[route.auth],
            handle,
            route.handler.__name__,
            audited=route.methods == CHANGE,
        )

    # Changing calls go to the audit trail; the object is the path's drive, server or resource.
    auditor = Auditor[str](
        services.audit,
        "elastichosts",
        lambda user: Actor(user, Credential.BASIC),
        ("drive", "server", "resource"),
        error_response,
    )
    http.add_routes(app, [bind(route) for route in ROUTES], error_response, auditor=auditor)
