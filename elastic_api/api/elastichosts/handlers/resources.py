"""/resources: list, info, create, set and destroy of static IPs and VLANs."""
from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList
from elastic_api.model.pages import parse_page
from elastic_api.model.properties import Info

# A list line per resource: `TYPE RESOURCE` (e.g. `ip 192.0.2.7`).
LIST_COLUMNS = ("type", "resource")


async def _visible(call: Call, type_: str | None) -> list[Info]:
    resources = call.services.resources
    # A marker here is an address or a UUID; the service canonicalises it.
    page = parse_page(call.request.query, call.config.max_list_limit, marker_is_id=False)
    return [resources.info(r) for r in await resources.visible(call.user, type_, page)]


async def list_all(call: Call) -> ValuesList:
    return ValuesList(await _visible(call, None), LIST_COLUMNS)


async def info_all(call: Call) -> PropertiesList:
    return PropertiesList(await _visible(call, None))


async def list_type(call: Call) -> ValuesList:
    return ValuesList(await _visible(call, call.arg("type")), LIST_COLUMNS)


async def info_type(call: Call) -> PropertiesList:
    return PropertiesList(await _visible(call, call.arg("type")))


async def info(call: Call) -> Properties:
    resources = call.services.resources
    return Properties(resources.info(await resources.get(call.user, call.arg("type"), call.arg("resource"))))


async def create(call: Call) -> Properties:
    resources = call.services.resources
    return Properties(resources.info(await resources.create(call.user, call.arg("type"), await call.props())))


async def set_(call: Call) -> Properties:
    resources = call.services.resources
    props = await call.props()
    return Properties(resources.info(await resources.set(call.user, call.arg("type"), call.arg("resource"), props)))


async def destroy(call: Call) -> NoContent:
    await call.services.resources.destroy(call.user, call.arg("type"), call.arg("resource"))
    return NoContent()
