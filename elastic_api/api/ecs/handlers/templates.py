"""`/templates`: the caller's images made from a server's boot drive (service/templates.py)."""

from __future__ import annotations

from elastic_api.api.ecs import snapshot_codec as codec
from elastic_api.api.ecs import server_codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.http.audit import created

# ecsapi sends every field, nulls included (ECS.md §3); exactly one of server and snapshot.
CREATE = {
    "server": Field(str, nullable=True),
    "snapshot": Field(int, nullable=True),
    "description": Field(str, nullable=True),
    "notes": Field(str, nullable=True),
}
UPDATE = {"description": Field(str, nullable=True), "notes": Field(str, nullable=True)}


async def list_templates(call: Call) -> Wire:
    templates = await call.services.templates.list(call.user)
    return call.listing("templates", templates, lambda t: str(t.id), codec.template)


async def get_template(call: Call) -> Wire:
    template = await call.services.templates.get(call.user, call.request.match_info["id"])
    return {"status": "ok", "template": codec.template(template)}


async def create_template(call: Call) -> Wire:
    body = await read_object(call.request, call.config, CREATE)
    template, job = await call.services.templates.create(
        call.user,
        call.group,
        body.get("server"),
        body.get("snapshot"),
        body.get("description") or "",
        body.get("notes") or "",
    )
    created(call.request, template.name)
    return {"status": "ok", "action_id": job.id, "action": job.id, "template": codec.template(template)}


async def update_template(call: Call) -> Wire:
    body = await read_object(call.request, call.config, UPDATE)
    template = await call.services.templates.update(
        call.user, call.request.match_info["id"], body.get("description"), body.get("notes")
    )
    return {"status": "ok", "template": codec.template(template)}


async def delete_template(call: Call) -> Wire:
    job = await call.services.templates.delete(call.user, call.request.match_info["id"])
    return {"status": "ok", "action": server_codec.action(job)}
