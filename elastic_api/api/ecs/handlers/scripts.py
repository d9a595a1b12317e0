"""`/scripts`: the caller's cloud scripts, which a server's create may name by id
(`user_customize`). Shared by every group of the user, like SSH keys."""

from __future__ import annotations

from elastic_api.api.ecs import codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.http.audit import created

NEW_SCRIPT = {
    "title": Field(str, required=True),
    "content": Field(str, required=True),
    "windows": Field(bool, nullable=True),
}
# ecsapi sends every field, nulls for the ones left as they are (ECS.md §3).
CHANGE_SCRIPT = {
    "title": Field(str, nullable=True),
    "content": Field(str, nullable=True),
    "windows": Field(bool, nullable=True),
}


async def list_scripts(call: Call) -> Wire:
    scripts = await call.services.scripts.list(call.user)
    return call.listing("scripts", scripts, lambda s: str(s.id), codec.cloud_script)


async def get_script(call: Call) -> Wire:
    script = await call.services.scripts.get(call.user, call.number("id"))
    return {"status": "ok", "script": codec.cloud_script(script)}


async def create_script(call: Call) -> Wire:
    body = await read_object(call.request, call.config, NEW_SCRIPT)
    script = await call.services.scripts.create(call.user, body["title"], body["content"], body.get("windows", False))
    created(call.request, str(script.id))
    return {"status": "ok", "script": codec.cloud_script(script)}


async def update_script(call: Call) -> Wire:
    number = call.number("id")
    await call.services.scripts.get(call.user, number)  # an unknown script is 404 before the body's faults
    body = await read_object(call.request, call.config, CHANGE_SCRIPT)
    script = await call.services.scripts.update(
        call.user, number, body.get("title"), body.get("content"), body.get("windows")
    )
    return {"status": "ok", "script": codec.cloud_script(script)}


async def delete_script(call: Call) -> Wire:
    await call.services.scripts.delete(call.user, call.number("id"))
    return {"status": "ok"}
