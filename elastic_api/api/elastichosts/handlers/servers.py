"""/servers: list, info, create, start, stop, shutdown, reset, set, destroy."""

from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec import cloudinit
from elastic_api.api.elastichosts.codec import server as codec
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList
from elastic_api.errors import UsageError
from elastic_api.http.audit import created
from elastic_api.model.server import ServerConfig


async def list_servers(call: Call) -> ValuesList:
    servers = await call.services.servers.visible(call.user, call.page())
    return ValuesList([codec.record_info(s) for s in servers], ("server", "cpu", "mem"))


async def info_servers(call: Call) -> PropertiesList:
    servers = call.services.servers
    return PropertiesList(
        [codec.view_info(await servers.info(s)) for s in await servers.visible(call.user, call.page())]
    )


async def info(call: Call) -> Properties:
    servers = call.services.servers
    return Properties(codec.view_info(await servers.info(await servers.get(call.user, call.arg("server")))))


async def _create(call: Call, *, start: bool) -> Properties:
    servers = call.services.servers
    config = codec.parse_config(await call.props())
    cloudinit.check_limits(config.cloudinit, call.config.max_inline_script_bytes)
    with codec.wire_errors():
        record = await servers.create(call.user, config, start=start)
    created(call.request, record.server)
    return Properties(codec.view_info(await servers.info(record)))


async def create(call: Call) -> Properties:
    return await _create(call, start=True)


async def create_stopped(call: Call) -> Properties:
    return await _create(call, start=False)


async def set_(call: Call) -> Properties:
    servers = call.services.servers
    props = await call.props()
    # A server that is not there is answered so before its keys are looked at.
    record = await servers.get(call.user, call.arg("server"))
    try:
        patch = codec.parse_patch(props)
    except UsageError:
        # Which bad key is named first can depend on the configuration (`nic:0:dhcp x` on a
        # server without nic:0 is a key given without its model): say that one if it differs.
        codec.check_set(record.config, props)
        raise

    def check(config: ServerConfig) -> None:
        merged = codec.check_set(config, props)
        cloudinit.check_limits(merged.cloudinit, call.config.max_inline_script_bytes)

    with codec.wire_errors(props.keys()):
        # check_set again under the server's lock: the configuration may have changed meanwhile.
        record = await servers.set(call.user, record.server, patch, check=check)
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
