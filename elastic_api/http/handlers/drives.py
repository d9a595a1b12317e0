"""/drives: list, info, create, set, destroy."""
from __future__ import annotations

from elastic_api.http.call import Call
from elastic_api.http.negotiate import NoContent, Properties, PropertiesList, ValuesList
from elastic_api.model.drive import to_info


async def list_drives(call: Call) -> ValuesList:
    drives = await call.services.drives.list(call.user, call.page())
    return ValuesList([to_info(d) for d in drives], ("drive",))


async def info_drives(call: Call) -> PropertiesList:
    drives = await call.services.drives.list(call.user, call.page())
    return PropertiesList([to_info(d) for d in drives])


async def info(call: Call) -> Properties:
    return Properties(to_info(await call.services.drives.get(call.user, call.arg("drive"))))


async def create(call: Call) -> Properties:
    return Properties(to_info(await call.services.drives.create(call.user, await call.props())))


async def set_(call: Call) -> Properties:
    props = await call.props()
    return Properties(to_info(await call.services.drives.set(call.user, call.arg("drive"), props)))


async def destroy(call: Call) -> NoContent:
    await call.services.drives.destroy(call.user, call.arg("drive"))
    return NoContent()
