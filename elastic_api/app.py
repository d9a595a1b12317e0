"""create_app: wires the configuration, store and backends into an aiohttp application."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from elastic_api.config import Config
from elastic_api.http.auth import parse_basic
from elastic_api.http.call import Call
from elastic_api.http.middleware import errors, plain_server_header
from elastic_api.http.server import connection
from elastic_api.http.transfer import record_start
from elastic_api.http.routes import add_routes
from elastic_api.service.drives import DriveService
from elastic_api.hypervisor import Hypervisor
from elastic_api.service.imaging import ImagingService
from elastic_api.service.quotas import QuotaService
from elastic_api.service.resources import ResourceService
from elastic_api.service.servers import ServerService
from elastic_api.service.users import UserService
from elastic_api.storage import Storage
from elastic_api.store import Store


@dataclass
class Services:
    users: UserService
    drives: DriveService
    imaging: ImagingService
    servers: ServerService
    quotas: QuotaService
    resources: ResourceService


SERVICES = web.AppKey("services", Services)
CONFIG = web.AppKey("config", Config)


def build_services(config: Config, store: Store, storage: Storage, hypervisor: Hypervisor) -> Services:
    quotas = QuotaService(config, store)
    drives = DriveService(config, store, storage, quotas=quotas)
    resources = ResourceService(config, store, hypervisor, quotas=quotas)
    users = UserService(store, cache_seconds=config.auth_cache_seconds, cache_users=config.auth_cache_users)
    return Services(users=users, drives=drives,
                    imaging=ImagingService(config, store, storage, drives),
                    servers=ServerService(config, store, hypervisor, drives, resources),
                    quotas=quotas, resources=resources)


def create_app(config: Config, *, store: Store, storage: Storage, hypervisor: Hypervisor) -> web.Application:
    """The application; the store, storage and hypervisor are opened and closed with it."""
    app = web.Application(middlewares=[connection, errors], client_max_size=config.max_metadata_body)
    app.on_response_prepare.append(plain_server_header)
    app.on_response_prepare.append(record_start)
    services = build_services(config, store, storage, hypervisor)
    app[SERVICES] = services
    app[CONFIG] = config

    async def backends(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        try:
            await services.drives.open_keys()  # no master key, no start: never silent plaintext
        except BaseException:
            await store.close()
            raise
        await hypervisor.open()
        try:
            hypervisor.on_event(services.servers.on_event)
            hypervisor.on_host_back(services.servers.on_host_back)
            await services.servers.reconcile()
            await services.drives.sweep_orphans()
            await services.imaging.resume()
            yield
        finally:
            hypervisor.on_event(None)
            hypervisor.on_host_back(None)
            await services.imaging.close()
            await storage.close()
            await hypervisor.close()
            await store.close()

    app.cleanup_ctx.append(backends)

    async def make_call(request: web.Request) -> Call:
        user, secret = parse_basic(request.headers.get("Authorization"))
        return Call(request, await services.users.authenticate(user, secret), services, config)

    add_routes(app, make_call)
    return app
