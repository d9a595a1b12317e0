"""`/servers`: create (answered at once: the work is its action), list, get, PUT notes and group,
DELETE, `/status`, `/actions` (power, console) and `/isolations`."""

from __future__ import annotations

from elastic_api.api.ecs import metrics as ecs_metrics
from elastic_api.api.ecs import records
from elastic_api.api.ecs import server_codec as codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.errors import Invalid
from elastic_api.http.audit import created
from elastic_api.model.ecs_networks import parse_networks
from elastic_api.model.job import CONSOLE, POWER_OFF, POWER_ON
from elastic_api.service.ecs_servers import EcsCreate

CREATE = {
    "plan": Field(str, required=True),
    "image": Field(str, required=True),
    "location": Field(str, required=True),
    "notes": Field(str, nullable=True),
    "group": Field(str, nullable=True),
    "ssh_key": Field(str, nullable=True),
    "isolate_from": Field(list, nullable=True),
    "reserved_plan": Field(object, nullable=True),
    "support": Field(object, nullable=True),
    "password": Field(str, nullable=True),
    "user_customize": Field(object, nullable=True),  # the script's text, or a library script's id
    "user_customize_env": Field(object, nullable=True),  # NAME=value lines for a library script
    "networks": Field(object, nullable=True),
}
SUPPORT = {"code": Field(str, required=True)}
RESERVE = {"reserved_plan": Field(object, required=True)}
UPDATE = {"notes": Field(str, nullable=True), "note": Field(str, nullable=True), "group": Field(str, nullable=True)}
ACTION = {"type": Field(str, nullable=True), "snapshot": Field(int, nullable=True)}
POWER = {"power_on": POWER_ON, "power_off": POWER_OFF, "console": CONSOLE}


def _create_request(body: dict[str, object]) -> EcsCreate:
    support, reserved = body.get("support"), body.get("reserved_plan")
    if support is not None and not isinstance(support, str):
        raise Invalid("support must be a string")
    if reserved is not None and (not isinstance(reserved, (str, int)) or isinstance(reserved, bool)):
        raise Invalid("Invalid formula to define reserved plan: give M{months}P{plan} or a reserved plan id")
    script = body.get("user_customize")
    if script is not None and (not isinstance(script, (str, int)) or isinstance(script, bool)):
        raise Invalid("user_customize must be a script's text or a library script's id")
    env = body.get("user_customize_env")
    if env is not None and (not isinstance(env, str) or not isinstance(script, int)):
        raise Invalid("user_customize_env must be NAME=value lines, given with a library script's id")
    isolate = body.get("isolate_from") or []
    assert isinstance(isolate, list)
    if not all(isinstance(name, str) for name in isolate):
        raise Invalid("isolate_from must be a list of server names")
    return EcsCreate(
        plan=str(body["plan"]),
        image=str(body["image"]),
        location=str(body["location"]),
        notes=str(body.get("notes") or ""),
        group=body.get("group"),  # type: ignore[arg-type]
        ssh_key=body.get("ssh_key"),  # type: ignore[arg-type]
        isolate_from=tuple(isolate),
        support=support,
        reserved_plan=reserved,
        password=body.get("password"),  # type: ignore[arg-type]
        script=script if isinstance(script, str) else None,
        script_id=script if isinstance(script, int) else None,
        script_env=env,
        networks=parse_networks(body["networks"]) if body.get("networks") is not None else (),
    )


async def create_server(call: Call) -> Wire:
    request = _create_request(await read_object(call.request, call.config, CREATE))
    view, job = await call.services.ecs.create(call.user, call.group, request)
    created(call.request, view.server.name)  # the audit trail's target
    # Both spellings of the action's id (ECS.md §7): ecsapi reads action_id, the docs show action.
    return {"status": "ok", "action_id": job.id, "action": job.id, "server": codec.server(view)}


async def list_servers(call: Call) -> Wire:
    ecs = call.services.ecs
    servers = await ecs.visible(call.user, call.group)
    views = {s.name: await ecs.view(s) for s in servers}
    body = call.listing("server", servers, lambda s: s.name, lambda s: codec.server(views[s.name]))
    body["count"] = len(body["server"])
    return body


async def get_server(call: Call) -> Wire:
    ecs = call.services.ecs
    server = await ecs.get(call.user, call.group, call.request.match_info["name"])
    return {"status": "ok", "server": codec.server(await ecs.view(server))}


async def update_server(call: Call) -> Wire:
    body = await read_object(call.request, call.config, UPDATE)
    notes = body.get("notes", body.get("note"))  # `notes` wins when both come (ECS.md §7)
    await call.services.ecs.update(call.user, call.group, call.request.match_info["name"], notes, body.get("group"))
    return {"status": "ok"}


async def delete_server(call: Call) -> Wire:
    job = await call.services.ecs.delete(call.user, call.group, call.request.match_info["name"])
    return {"status": "ok", "action": codec.action(job)}


async def server_status(call: Call) -> Wire:
    name = call.request.match_info["name"]
    status = await call.services.ecs.current_status(call.user, call.group, name)
    return {"status": "ok", "server": {"name": name, "current_status": status}}


async def server_action(call: Call) -> Wire:
    """A bare Action (ECS.md §3), not wrapped like the other answers."""
    name = call.request.match_info["name"]
    await call.services.ecs.get(call.user, call.group, name)  # an unknown server is 404 before the body's faults
    body = await read_object(call.request, call.config, ACTION)
    kind = body.get("type")
    if kind is None:
        raise Invalid("action type is required")
    if kind == "rollback":  # service/ecs_snapshots.py: 400 without a snapshot, 404 for an unknown one
        return codec.action(await call.services.snapshots.rollback(call.user, call.group, name, body.get("snapshot")))
    if kind not in POWER:
        raise Invalid(f"unknown action type: {kind[:40]}")
    return codec.action(await call.services.ecs.act(call.user, call.group, name, POWER[kind]))


async def isolations(call: Call) -> Wire:
    partners = await call.services.ecs.isolations(call.user, call.group, call.request.match_info["name"])
    return {"status": "ok", "isolations": [{"name": p.name, "notes": p.notes} for p in partners]}


async def metrics(call: Call) -> Wire:
    """The bare `{"metrics": …}` of ECS.md §4: the engine's sampled rates of the server, empty
    until its guest has run for two sampling intervals (metrics_interval)."""
    server = await call.services.ecs.get(call.user, call.group, call.request.match_info["name"])
    points = await call.services.metrics.series(call.user, server.server) if server.server else []
    return ecs_metrics.render(server.name, points)


async def attach_support(call: Call) -> Wire:
    body = await read_object(call.request, call.config, SUPPORT)
    server, record = await call.services.ecs.attach_support(
        call.user, call.group, call.request.match_info["name"], body["code"]
    )
    return {"status": "ok", "support": records.server_support(record, server.name, server.notes)}


async def cancel_support(call: Call) -> Wire:
    await call.services.ecs.cancel_support(call.user, call.group, call.request.match_info["name"])
    return {"status": "ok"}


async def reserve(call: Call) -> Wire:
    """A bare Reserved record (ECS.md §3)."""
    name = call.request.match_info["name"]
    await call.services.ecs.get(call.user, call.group, name)
    body = await read_object(call.request, call.config, RESERVE)
    wanted = body["reserved_plan"]
    if isinstance(wanted, bool) or not isinstance(wanted, (str, int)):
        raise Invalid("Invalid formula to define reserved plan: give M{months}P{plan} or a reserved plan id")
    return records.reserved(await call.services.ecs.reserve(call.user, call.group, name, wanted), name)
