"""The operators' /metrics over HTTP: a middleware that times every request of the API app, and
the small app of its own, on `metrics_listen`, that a Prometheus server scrapes. It is never
mounted on the API's listener: who can reach the API need not see its internals."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from elastic_api.http.middleware import CLIENT_GONE, client_gone
from elastic_api.service.ops_metrics import CONTENT_TYPE, OpsMetrics

log = logging.getLogger(__name__)
# The dialect an app (the root or a sub-app) speaks, for the requests' `dialect` label.
DIALECT: web.AppKey[str] = web.AppKey("dialect", str)
OPS_METRICS: web.AppKey[OpsMetrics] = web.AppKey("ops_metrics", OpsMetrics)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> tuple[str, str]:
    """(dialect, route pattern) of a request: the pattern (`/drives/{uuid}/info`), never the path,
    so the labels' values are the route tables' few; "unmatched" when no route took it."""
    info = request.match_info
    dialect = next((app[DIALECT] for app in reversed(info.apps) if DIALECT in app), "")
    resource = info.route.resource
    return dialect, resource.canonical if resource is not None else "unmatched"


def timing(metrics: OpsMetrics) -> Middleware:
    """The outermost middleware of the API app: each request's status and time, the sending of
    its answer included (each route's `serving` wrapper inside writes it)."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except (asyncio.CancelledError, ConnectionError):
            status = CLIENT_GONE if client_gone(request) else 500
            raise
        finally:
            dialect, route = route_of(request)
            metrics.observe_request(dialect, route, request.method, status, time.perf_counter() - began)

    return timed


def metrics_app(metrics: OpsMetrics) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        body = await metrics.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def start_metrics(metrics: OpsMetrics, host: str, port: int) -> web.AppRunner:
    """Serve /metrics on HOST:PORT until the runner returned is cleaned up."""
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("operators' metrics at http://%s:%d/metrics", host, port)
    return runner
