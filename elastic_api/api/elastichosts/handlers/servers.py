"""/servers: list, info, create, start, stop, shutdown, reset, set, destroy."""
from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec.stats import stats_info
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList
from elastic_api.model.server_record import to_server_info


async def list_servers(call: Call) -> ValuesList:
    servers = await call.services.servers.visible(call.user, call.page())
    return ValuesList([to_server_info(s) for s in servers], ("server", "cpu", "mem"))


async def info_servers(call: Call) -> PropertiesList:
    servers = call.services.servers
    return PropertiesList([await servers.info(s, stats_info) for s in await servers.visible(call.user, call.page())])


async def info(call: Call) -> Properties:
    servers = call.services.servers
    return Properties(await servers.info(await servers.get(call.user, call.arg("server")), stats_info))


async def create(call: Call) -> Properties:
    servers = call.services.servers
    return Properties(await servers.info(await servers.create(call.user, await call.props(), start=True), stats_info))


async def create_stopped(call: Call) -> Properties:
    servers = call.services.servers
    return Properties(await servers.info(await servers.create(call.user, await call.props(), start=False),
                                         stats_info))


async def set_(call: Call) -> Properties:
    servers = call.services.servers
    props = await call.props()
    return Properties(await servers.info(await servers.set(call.user, call.arg("server"), props), stats_info))


async def start(call: Call) -> NoContent:
    await call.services.servers.start(call.user, call.arg("server"))
    return NoContent()


async def stop(call: Call) -> NoContent:
    await call.services.servers.stop(call.user, call.arg("server"))
    return NoContent()


async def shutdown(call: Call) -> NoContent:
    await call.services.servers.shutdown(call.user, call.arg("server"))
    return NoContent()


async def reset(call: Call) -> NoContent:
    await call.services.servers.reset(call.user, call.arg("server"))
    return NoContent()


async def destroy(call: Call) -> NoContent:
    await call.services.servers.destroy(call.user, call.arg("server"))
    return NoContent()
