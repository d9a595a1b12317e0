"""/resources: list, info, create, set and destroy of static IPs and VLANs."""

from __future__ import annotations

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec import resource as codec
from elastic_api.api.elastichosts.negotiate import NoContent, Properties, PropertiesList, ValuesList
from elastic_api.api.elastichosts.properties import Info
from elastic_api.http.audit import created
from elastic_api.model.pages import parse_page
from elastic_api.model.resource import parse_type

# A list line per resource: `TYPE RESOURCE` (e.g. `ip 192.0.2.7`).
LIST_COLUMNS = ("type", "resource")


async def _visible(call: Call, type_: str | None) -> list[Info]:
    resources = call.services.resources
    # A marker here is an address or a UUID; the service canonicalises it.
    page = parse_page(call.request.query, call.config.max_list_limit, marker_is_id=False)
    return [codec.to_info(r, resources.pool) for r in await resources.visible(call.user, type_, page)]


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
    return Properties(
        codec.to_info(await resources.get(call.user, call.arg("type"), call.arg("resource")), resources.pool)
    )


async def create(call: Call) -> Properties:
    resources = call.services.resources
    props = await call.props()
    # The type first, as before: an unknown type is a 404 whatever the body says.
    type_ = parse_type(call.arg("type"))
    resource = await resources.create(call.user, type_, codec.parse_spec(props))
    created(call.request, resource.resource)
    return Properties(codec.to_info(resource, resources.pool))


async def set_(call: Call) -> Properties:
    resources = call.services.resources
    changes = codec.parse_changes(await call.props())
    resource = await resources.set(call.user, call.arg("type"), call.arg("resource"), changes)
    return Properties(codec.to_info(resource, resources.pool))


async def destroy(call: Call) -> NoContent:
    await call.services.resources.destroy(call.user, call.arg("type"), call.arg("resource"))
    return NoContent()
