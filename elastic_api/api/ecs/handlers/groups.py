"""`/groups`: the caller's groups. A token confined to a group sees that group alone, as if it
were the only one, and may neither make nor delete groups."""

from __future__ import annotations

from elastic_api.api.ecs import codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.errors import Invalid, NotFound
from elastic_api.http.audit import created
from elastic_api.model.group import Group

NEW_GROUP = {"notes": Field(str, nullable=True), "password": Field(str, required=True)}


async def _visible(call: Call) -> list[Group]:
    groups = await call.services.groups.list(call.user)
    return [g for g in groups if call.group is None or g.name == call.group]


def _unconfined(call: Call, what: str) -> None:
    if call.group is not None:
        raise Invalid(f"a token confined to group {call.group} cannot {what}")


async def list_groups(call: Call) -> Wire:
    return call.listing("groups", await _visible(call), lambda g: str(g.id), codec.group)


async def get_group(call: Call) -> Wire:
    number = call.number("id")
    found = next((g for g in await _visible(call) if g.id == number), None)
    if found is None:
        raise NotFound(f"group not found: {number}")
    return {"status": "ok", "group": codec.group(found)}


async def create_group(call: Call) -> Wire:
    _unconfined(call, "make groups")
    body = await read_object(call.request, call.config, NEW_GROUP)
    group = await call.services.groups.create(call.user, body.get("notes", ""), body["password"])
    created(call.request, str(group.id))
    return {"status": "ok", "group": codec.group(group)}


async def delete_group(call: Call) -> Wire:
    number = call.number("id")
    if call.group is not None:
        if not any(g.id == number for g in await _visible(call)):
            raise NotFound(f"group not found: {number}")
        _unconfined(call, "delete groups")
    await call.services.groups.delete(call.user, number)
    return {"status": "ok"}
