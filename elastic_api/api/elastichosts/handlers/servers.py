"""/servers: list, info, create, start, stop, shutdown, reset, set, destroy."""
from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec import server as codec
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList


async def list_servers(call: Call) -> ValuesList:
    servers = await call.services.servers.visible(call.user, call.page())
    return ValuesList([codec.record_info(s) for s in servers], ("server", "cpu", "mem"))


async def info_servers(call: Call) -> PropertiesList:
    servers = call.services.servers
    return PropertiesList([codec.view_info(await servers.info(s))
                           for s in await servers.visible(call.user, call.page())])


async def info(call: Call) -> Properties:
    servers = call.services.servers
    return Properties(codec.view_info(await servers.info(await servers.get(call.user, call.arg("server")))))


async def _create(call: Call, *, start: bool) -> Properties:
    servers = call.services.servers
    config = codec.parse_config(await call.props())
    with codec.wire_errors():
        record = await servers.create(call.user, config, start=start)
    return Properties(codec.view_info(await servers.info(record)))


async def create(call: Call) -> Properties:
    return await _create(call, start=True)


async def create_stopped(call: Call) -> Properties:
    return await _create(call, start=False)


async def set_(call: Call) -> Properties:
    servers = call.services.servers
    props = await call.props()
    patch = codec.parse_patch(props)
    with codec.wire_errors(props.keys()):
        record = await servers.set(call.user, call.arg("server"), patch)
    return Properties(codec.view_info(await servers.info(record)))


async def start(call: Call) -> NoContent:
    with codec.wire_errors():
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
