"""create_app: wires the configuration, store and backends into an aiohttp application and
mounts the dialects on it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from elastic_api.api.ecs import app as ecs
from elastic_api.api.elastichosts import routes as elastichosts
from elastic_api.api.elastichosts.errors import error_response
from elastic_api.config import Config
from elastic_api.errors import ConfigError
from elastic_api.http.metrics import DIALECT, OPS_METRICS, timing
from elastic_api.http.server import REFUSAL
from elastic_api.http.sendfile import ThreadedSendfile
from elastic_api.http.transfer import SENDFILE
from elastic_api.hypervisor import Hypervisor
from elastic_api.service.ops_metrics import OpsMetrics
from elastic_api.service.services import Services, build_services
from elastic_api.storage import Storage
from elastic_api.store import Store

log = logging.getLogger(__name__)
SERVICES = web.AppKey("services", Services)
CONFIG = web.AppKey("config", Config)


def create_app(config: Config, *, store: Store, storage: Storage, hypervisor: Hypervisor) -> web.Application:
    """The application; the store, storage and hypervisor are opened and closed with it."""
    # ElasticHosts is the root dialect: its paths have no prefix, and what matches no route of
    # any dialect is answered in its shape.
    services = build_services(config, store, storage, hypervisor)
    # No middleware by default: each route's handler answers its errors and writes its answer
    # (http.server.serving), one call rather than a chain on every request.
    middlewares: list[Middleware] = []
    ops: OpsMetrics | None = None
    if config.metrics_listen:  # off by default: no timing, no listener
        ops = OpsMetrics(store=store, hypervisor=hypervisor, pool_dir=config.pool_dir, jobs=services.jobs)
        middlewares.insert(0, timing(ops))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_metadata_body)
    app[DIALECT] = "elastichosts"
    if ops is not None:
        app[OPS_METRICS] = ops
    app[SERVICES] = services
    app[CONFIG] = config
    app[REFUSAL] = error_response
    app[SENDFILE] = sender = ThreadedSendfile(config.sendfile_threads, config.sendfile_stall_seconds)

    async def backends(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        try:
            await services.drives.open_keys()  # no master key, no start: never silent plaintext
            if not await store.claim_node(services.jobs.holder):
                raise ConfigError(
                    f"a node named {services.jobs.holder} is running on this database already:"
                    " give each node its own node_name"
                )
        except BaseException:
            await store.close()
            raise
        await hypervisor.open()
        try:
            hypervisor.on_event(services.servers.on_event)
            hypervisor.on_host_back(services.servers.on_host_back)
            async with store.join_nodes() as alone:
                await services.servers.reconcile()  # host by host, one node at a time
                if alone:  # another node may be making a file its row does not name yet
                    await services.drives.sweep_orphans()
                else:
                    log.info("other nodes are running: the pool's orphans wait for a start with none")
            await services.jobs.start()  # after every kind's handler is registered
            await services.metrics.start()
            services.drives.counters.start()
            await services.ecs.recover(alone=alone)  # after the runner took its jobs back
            await services.snapshots.recover(alone=alone)
            yield
        finally:
            await services.metrics.close()
            hypervisor.on_event(None)
            hypervisor.on_host_back(None)
            await services.jobs.close()
            await services.audit.close()  # what is queued, before the store closes
            await services.drives.counters.close()  # the counts not yet stored, before the store goes
            await storage.close()
            await hypervisor.close()
            await store.close()
            sender.close()

    app.cleanup_ctx.append(backends)
    ecs.mount(app, services, config)
    elastichosts.mount(app, services, config)
    return app
