"""The Seeweb ECS v2 dialect (ECS.md), a sub-application at /ecs/v2 on the same listener as the
ElasticHosts API: its own routes, token authentication, JSON bodies and error shape, over the
same services."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from elastic_api.api.ecs.auth import PUBLIC, TOKEN, token_policy
from elastic_api.api.ecs.call import Call
from elastic_api.api.ecs.errors import error_response
from elastic_api.api.ecs.routes import PREFIX, ROUTES, Route
from elastic_api.config import Config
from elastic_api.http import routes as http
from elastic_api.http.audit import Auditor
from elastic_api.http.metrics import DIALECT
from elastic_api.model.audit import Actor
from elastic_api.model.token import Principal
from elastic_api.service.services import Services

# POSTs that only read (a question in a body): not changing calls, so not in the audit trail.
QUERIES = frozenset({("POST", "/regions/availables")})


def actor(principal: Any) -> Actor | None:
    """Who a call of this dialect is recorded for: its token's user (a public call has none)."""
    if not isinstance(principal, Principal):
        return None
    return Actor(principal.user, principal.credential, principal.group)


def mount(app: web.Application, services: Services, config: Config) -> None:
    """The ECS sub-application on `app` at /ecs/v2: every error of its routes, its unknown paths
    included, is answered in its shape (http.routes.add_routes serves each with its renderer)."""
    ecs = web.Application(client_max_size=config.max_metadata_body)
    policies: dict[Any, http.Auth[Any]] = {PUBLIC: http.public, TOKEN: token_policy(services.tokens)}

    def bind(route: Route) -> http.Route[Any]:
        async def handle(request: web.Request, principal: Any) -> web.StreamResponse:
            return web.json_response(await route.handler(Call(request, principal, services, config)))

        # HEAD is GET without the body (RFC 9110), answered by the same handler.
        methods = frozenset({"GET", "HEAD"}) if route.method == "GET" else frozenset({route.method})
        return http.Route(
            methods,
            route.path,
            policies[route.auth],
            handle,
            route.handler.__name__,
            audited=route.method != "GET" and (route.method, route.path) not in QUERIES,
        )

    http.add_routes(
        ecs,
        [bind(route) for route in ROUTES],
        error_response,
        auditor=Auditor[Any](services.audit, "ecs", actor, ("name", "id"), error_response),
    )
    ecs[DIALECT] = "ecs"  # the operators' metrics label its requests so
    app.add_subapp(PREFIX, ecs)
