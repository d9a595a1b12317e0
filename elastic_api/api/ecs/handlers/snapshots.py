"""`/servers/{name}/snapshots`: a server's snapshots (service/ecs_snapshots.py). Seeweb documents
no path for them (its panel makes them); these are ours, shaped like the rest of the dialect:
POST answers the Snapshot and its `create_snapshot` action, DELETE is done at once."""

from __future__ import annotations

from elastic_api.api.ecs import server_codec
from elastic_api.api.ecs import snapshot_codec as codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object
from elastic_api.http.audit import created

CREATE = {"description": Field(str, nullable=True), "notes": Field(str, nullable=True)}


async def list_snapshots(call: Call) -> Wire:
    server, snapshots = await call.services.snapshots.list(call.user, call.group, call.request.match_info["name"])
    by_id = {s.id: s for s in snapshots}
    return call.listing(
        "snapshots",
        snapshots,
        lambda s: str(s.id),
        lambda s: codec.snapshot(s, server.name, by_id.get(s.parent) if s.parent is not None else None),
    )


async def get_snapshot(call: Call) -> Wire:
    server, snapshot = await call.services.snapshots.get(
        call.user, call.group, call.request.match_info["name"], call.number("id")
    )
    return {"status": "ok", "snapshot": codec.snapshot(snapshot, server.name)}


async def create_snapshot(call: Call) -> Wire:
    name = call.request.match_info["name"]
    await call.services.ecs.get(call.user, call.group, name)  # an unknown server is 404 before the body's faults
    body = await read_object(call.request, call.config, CREATE)
    server, snapshot, job = await call.services.snapshots.create(
        call.user, call.group, name, body.get("description") or "", body.get("notes") or ""
    )
    created(call.request, str(snapshot.id))
    return {
        "status": "ok",
        "action_id": job.id,
        "action": server_codec.action(job),
        "snapshot": codec.snapshot(snapshot, server.name),
    }


async def delete_snapshot(call: Call) -> Wire:
    await call.services.snapshots.delete(call.user, call.group, call.request.match_info["name"], call.number("id"))
    return {"status": "ok"}
