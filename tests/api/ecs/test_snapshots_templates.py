"""Snapshots, rollback and templates in-process, on the libvirt test driver with the real pool
(qemu-img on the real qcow2-LUKS boot drives; the real guest is in test_ecsapi_templates.py):
a snapshot of a stopped server, a rollback restoring the drive's bytes (Reimaging, then Booted,
started again when it ran, last_restored_snapshot shown), templates from a stopped server or a
snapshot holding the drive's bytes, a create from a template overlaying it, PATCH, DELETE (409
while used), and the refusals: running, busy, unknown, another user's."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config
from elastic_api.model.catalogue import parse_plans
from elastic_api.model import ecs as ecs_model
from tests.api.ecs.conftest import Ecs, assert_error
from tests.api.ecs.test_servers import booted, finished, image  # noqa: F401 - the image fixture
from tests.storage.conftest import body

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.fixture
def config(config: Config) -> Config:
    # A 1 GB plan: whole drives are read back and hashed here; few snapshots, to meet the limit.
    return dataclasses.replace(
        config, plans=parse_plans([{"name": "ECS1", "cpu": 1, "ram": 64, "disk": 1}]), max_snapshots_per_server=3
    )


async def drive_digest(client: Any, ecs: Ecs, name: str) -> str:
    """The whole boot drive's guest bytes, hashed as they stream through the pool's read path."""
    storage, volume = await drive_of(client, ecs, name)
    digest = hashlib.sha256()
    async for chunk in storage.read(volume, 0, volume.size):
        digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


async def drive_of(client: Any, ecs: Ecs, name: str) -> tuple[Any, Any]:
    services = client.app[SERVICES]
    row = await services.ecs.get(ecs.user, None, name)
    drive = await services.drives.owned(ecs.user, row.drive)
    return services.drives.storage, services.drives.volume(drive)


async def read(client: Any, ecs: Ecs, name: str, length: int = 2 * MiB) -> bytes:
    storage, volume = await drive_of(client, ecs, name)
    return b"".join([chunk async for chunk in storage.read(volume, 0, length)])


async def write(client: Any, ecs: Ecs, name: str, data: bytes) -> None:
    storage, volume = await drive_of(client, ecs, name)
    await storage.write(volume, 0, body(data), gzip=False, max_decompressed=64 * MiB)


async def act(ecs: Ecs, name: str, body_: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    reply = await ecs.post(f"/servers/{name}/actions", body_)
    assert reply.status == 200, reply.text
    done = await finished(ecs, reply.json["id"])
    assert done["status"] == status, done
    return done


async def current(ecs: Ecs, name: str) -> str:
    return (await ecs.get(f"/servers/{name}/status")).json["server"]["current_status"]


async def snapshot(ecs: Ecs, name: str, **body_: Any) -> dict[str, Any]:
    reply = await ecs.post(f"/servers/{name}/snapshots", body_)
    assert reply.status == 200, reply.text
    made = reply.json
    assert made["snapshot"]["status"] == "CG" and made["action"]["type"] == "create_snapshot"
    assert made["action"]["resource_type"] == "SNP" and made["action"]["resource"] == str(made["snapshot"]["id"])
    done = await finished(ecs, made["action_id"])
    assert done["status"] == "completed", done
    return made["snapshot"]


async def test_snapshot_and_rollback(client: Any, ecs_alice: Ecs, ecs_bob: Ecs, image: str) -> None:  # noqa: F811
    name = await booted(ecs_alice)
    # Running: 409, nothing made.
    assert "power it off" in assert_error(await ecs_alice.post(f"/servers/{name}/snapshots", {}), 409)["message"]
    assert (await ecs_alice.get(f"/servers/{name}/snapshots")).json["snapshots"] == []
    await act(ecs_alice, name, {"type": "power_off"})
    original = await read(client, ecs_alice, name)
    first = await snapshot(ecs_alice, name, description="before", notes="n1")
    await write(client, ecs_alice, name, b"changed!" * 1000)
    assert (await read(client, ecs_alice, name))[:8] == b"changed!"
    second = await snapshot(ecs_alice, name)
    listed = (await ecs_alice.get(f"/servers/{name}/snapshots")).json["snapshots"]
    assert [(s["id"], s["status"], s["status_label"]) for s in listed] == [
        (first["id"], "CD", "Created"),
        (second["id"], "CD", "Created"),
    ]
    assert listed[0]["description"] == "before" and listed[0]["notes"] == "n1" and listed[0]["source_server"] == name
    assert listed[1]["snapshot_parent"]["id"] == first["id"] and not listed[0]["is_last_restored"]

    # Rollback of a stopped server: the bytes of the snapshot, Booted, still stopped.
    done = await act(ecs_alice, name, {"type": "rollback", "snapshot": first["id"]})
    assert (done["type"], done["resource"], done["resource_type"]) == ("rollback", name, "ECS")
    assert await read(client, ecs_alice, name) == original
    server = (await ecs_alice.get(f"/servers/{name}")).json["server"]
    assert server["status"] == "Booted"
    assert server["last_restored_snapshot"]["id"] == first["id"]
    assert server["last_restored_snapshot"]["is_last_restored"] is True
    assert await current(ecs_alice, name) == "Stopped"

    # Rollback of a running server: stopped for the restore, started again, Reimaging meanwhile.
    await act(ecs_alice, name, {"type": "power_on"})
    reply = await ecs_alice.post(f"/servers/{name}/actions", {"type": "rollback", "snapshot": second["id"]})
    assert reply.status == 200, reply.text
    assert (await ecs_alice.get(f"/servers/{name}")).json["server"]["status"] in ("Reimaging", "Booted")
    # Busy while it runs (or done already: then the server is Booted and idle again).
    again = await ecs_alice.post(f"/servers/{name}/actions", {"type": "power_off"})
    assert again.status in (200, 409), again.text
    assert (await finished(ecs_alice, reply.json["id"]))["status"] == "completed"
    if again.status == 200:
        await finished(ecs_alice, again.json["id"])
        await act(ecs_alice, name, {"type": "power_on"})
    else:
        assert await current(ecs_alice, name) == "Running"
    server = (await ecs_alice.get(f"/servers/{name}")).json["server"]
    assert server["status"] == "Booted" and server["last_restored_snapshot"]["id"] == second["id"]
    assert server["last_restored_snapshot"]["snapshot_parent"]["id"] == first["id"]

    # Refusals.
    assert (
        "snapshot is required"
        in assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "rollback"}), 400)["message"]
    )
    assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "rollback", "snapshot": 10**6}), 404)
    assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "rollback", "snapshot": "1"}), 400)
    assert_error(await ecs_bob.post(f"/servers/{name}/actions", {"type": "rollback", "snapshot": first["id"]}), 404)
    assert_error(await ecs_bob.get(f"/servers/{name}/snapshots"), 404)
    assert_error(await ecs_bob.delete(f"/servers/{name}/snapshots/{first['id']}"), 404)
    other = await booted(ecs_alice)  # alice's other server: not this snapshot's
    assert_error(await ecs_alice.post(f"/servers/{other}/actions", {"type": "rollback", "snapshot": first["id"]}), 404)
    assert_error(await ecs_alice.post(f"/servers/{name}/snapshots", {"description": "x" * 2000}), 400)
    assert_error(await ecs_alice.post(f"/servers/{name}/snapshots", {"size": 1}), 400)
    assert_error(await ecs_alice.post("/servers/ec999999/snapshots", {}), 404)
    # Deleting a snapshot needs the server stopped; then it is gone.
    assert_error(await ecs_alice.delete(f"/servers/{name}/snapshots/{first['id']}"), 409)
    await act(ecs_alice, name, {"type": "power_off"})
    # The limit per server (max_snapshots_per_server, 3 here): 403, nothing made.
    third = await snapshot(ecs_alice, name)
    assert "quota exceeded" in assert_error(await ecs_alice.post(f"/servers/{name}/snapshots", {}), 403)["message"]
    assert len((await ecs_alice.get(f"/servers/{name}/snapshots")).json["snapshots"]) == 3
    assert (await ecs_alice.delete(f"/servers/{name}/snapshots/{first['id']}")).status == 200
    assert_error(await ecs_alice.get(f"/servers/{name}/snapshots/{first['id']}"), 404)
    listed = (await ecs_alice.get(f"/servers/{name}/snapshots")).json["snapshots"]
    assert [s["id"] for s in listed] == [second["id"], third["id"]]
    # The actions list shows them.
    kinds = [a["type"] for a in (await ecs_alice.get("/actions")).json["actions"]]
    assert kinds.count("create_snapshot") == 3 and kinds.count("rollback") == 2
    # Gone with their server.
    deleted = await ecs_alice.delete(f"/servers/{name}")
    assert (await finished(ecs_alice, deleted.json["action"]["id"]))["status"] == "completed"
    services = client.app[SERVICES]
    assert await services.snapshots.store.get_snapshot(ecs_alice.user, second["id"]) is None


async def test_templates(client: Any, ecs_alice: Ecs, ecs_bob: Ecs, image: str) -> None:  # noqa: F811
    services = client.app[SERVICES]
    name = await booted(ecs_alice)
    # Running, no snapshot: 409; the refusals of the body: 400.
    assert "power it off" in assert_error(await ecs_alice.post("/templates", {"server": name}), 409)["message"]
    for bad in (
        {"server": name, "snapshot": 1},
        {},
        {"server": None, "snapshot": None, "description": "d", "notes": "n"},
        {"server": name, "description": "d\nd"},
        {"server": name, "color": "red"},
    ):
        assert_error(await ecs_alice.post("/templates", bad), 400)
    assert (
        "server not found" in assert_error(await ecs_alice.post("/templates", {"server": "ec999999"}), 400)["message"]
    )
    assert "server not found" in assert_error(await ecs_bob.post("/templates", {"server": name}), 400)["message"]
    assert_error(await ecs_alice.post("/templates", {"snapshot": 10**6}), 400)

    # From a snapshot, while the guest runs: the snapshot's bytes.
    await act(ecs_alice, name, {"type": "power_off"})
    await write(client, ecs_alice, name, b"snapped!" * 512)
    snap = await snapshot(ecs_alice, name)
    at_snapshot = await drive_digest(client, ecs_alice, name)
    await act(ecs_alice, name, {"type": "power_on"})
    reply = await ecs_alice.post(
        "/templates", {"server": None, "snapshot": snap["id"], "description": "from snap", "notes": None}
    )
    assert reply.status == 200, reply.text
    made = reply.json["template"]
    assert made["status"] == "CG" and made["name"].startswith("ei") and len(made["name"]) == 8
    assert made["public"] is False and made["required_disk"] == 1 and made["description"] == "from snap"
    action = await finished(ecs_alice, reply.json["action_id"])
    assert (action["status"], action["type"], action["resource"], action["resource_type"]) == (
        "completed",
        "create_template",
        made["name"],
        "ECI",
    )
    template = (await ecs_alice.get(f"/templates/{made['id']}")).json["template"]
    assert template["status"] == "CD" and template["active_flag"] is True
    base = services.drives.storage.base_path(template["uuid"])
    assert base.stat().st_size == GiB
    assert await asyncio.to_thread(file_digest, base) == at_snapshot  # byte for byte, the whole drive

    # From the stopped server: its bytes now.
    await act(ecs_alice, name, {"type": "power_off"})
    await write(client, ecs_alice, name, b"stopped!" * 512)
    reply = await ecs_alice.post("/templates", {"server": name, "description": "d", "notes": "n"})
    assert reply.status == 200, reply.text
    assert (await finished(ecs_alice, reply.json["action_id"]))["status"] == "completed"
    second = reply.json["template"]
    second_base = services.drives.storage.base_path(second["uuid"])
    assert await asyncio.to_thread(file_digest, second_base) == await drive_digest(client, ecs_alice, name)
    assert [t["id"] for t in (await ecs_alice.get("/templates")).json["templates"]] == [made["id"], second["id"]]

    # PATCH: nulls leave a field as it is.
    patched = await ecs_alice.call("PATCH", f"/templates/{made['id']}", {"description": "d2", "notes": None})
    assert patched.status == 200 and patched.json["template"]["description"] == "d2"
    assert patched.json["template"]["notes"] == ""
    assert_error(await ecs_alice.call("PATCH", f"/templates/{made['id']}", {"notes": "x" * 5000}), 400)

    # Another user's: unknown.
    assert (await ecs_bob.get("/templates")).json["templates"] == []
    assert_error(await ecs_bob.get(f"/templates/{made['id']}"), 404)
    assert_error(await ecs_bob.call("PATCH", f"/templates/{made['id']}", {"notes": "x"}), 404)
    assert_error(await ecs_bob.delete(f"/templates/{made['id']}"), 404)
    refused = await ecs_bob.post("/servers", {"plan": "ECS1", "image": made["name"], "location": "local", "notes": ""})
    assert "unknown image" in assert_error(refused, 400)["message"]

    # A server made from the template (by name): its boot drive overlays the template's base.
    made_from = await booted(ecs_alice, image=made["name"])
    row = await services.ecs.get(ecs_alice.user, None, made_from)
    assert row.image == made["uuid"] and row.so == made["name"]
    assert await services.drives.storage.image_users(made["uuid"]) == [row.drive]
    assert (await read(client, ecs_alice, made_from))[:8] == b"snapped!"
    by_uuid = await booted(ecs_alice, image=second["uuid"])
    assert (await read(client, ecs_alice, by_uuid))[:8] == b"stopped!"
    # In use: 409; once the server is gone, deleted by its action, then unknown.
    assert "in use" in assert_error(await ecs_alice.delete(f"/templates/{made['id']}"), 409)["message"]
    for server in (made_from, by_uuid):
        deleted = await ecs_alice.delete(f"/servers/{server}")
        assert (await finished(ecs_alice, deleted.json["action"]["id"]))["status"] == "completed"
    gone = await ecs_alice.delete(f"/templates/{made['id']}")
    assert gone.status == 200, gone.text
    assert (gone.json["action"]["type"], gone.json["action"]["resource_type"]) == ("delete_template", "ECI")
    assert (await finished(ecs_alice, gone.json["action"]["id"]))["status"] == "completed"
    assert_error(await ecs_alice.get(f"/templates/{made['id']}"), 404)
    assert not services.drives.storage.base_path(made["uuid"]).exists()
    assert_error(await ecs_alice.post("/servers", {"plan": "ECS1", "image": made["name"], "location": "local"}), 400)
    assert ecs_model.server_id(name) is not None


async def test_start_up_ends_what_a_crash_left_passing(client: Any, ecs_alice: Ecs, image: str) -> None:  # noqa: F811
    """A crash between a status and its job: Reimaging without a rollback is Booted again, a
    snapshot or template being made without its job failed, a template Deleting without its job
    made again. What has a job is left to it."""
    from elastic_api.model.snapshot import CREATING, DELETING, Snapshot, Template

    services = client.app[SERVICES]
    store = services.snapshots.store
    name = await booted(ecs_alice)
    row = await services.ecs.get(ecs_alice.user, None, name)
    await store.update_ecs_server(row.id, status="Reimaging")
    left = await store.insert_snapshot(Snapshot(0, ecs_alice.user, row.id, "", "", CREATING, 1, 1), limit=3)
    making = await store.insert_template(
        Template(0, ecs_alice.user, "u-1", "", "", CREATING, name, None, 0, 1, "tiny-os-1"), limit=3
    )
    deleting = await store.insert_template(
        Template(0, ecs_alice.user, "u-2", "", "", DELETING, name, None, 5, 1, "tiny-os-1"), limit=3
    )
    await services.snapshots.recover()
    assert (await services.ecs.get(ecs_alice.user, None, name)).status == "Booted"
    assert (await store.get_snapshot(ecs_alice.user, left.id)).status == "FL"
    assert (await store.get_template(ecs_alice.user, making.id)).status == "FL"
    assert (await store.get_template(ecs_alice.user, deleting.id)).status == "CD"
    listed = (await ecs_alice.get(f"/servers/{name}/snapshots")).json["snapshots"]
    assert [(s["status"], s["status_label"], s["active_flag"]) for s in listed] == [("FL", "Failed", False)]
