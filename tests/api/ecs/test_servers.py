"""ECS servers and actions in-process, on the libvirt test driver (the real boot is in
test_ecsapi.py): create → action completed, the two dialects agreeing, power, PUT, delete,
paging, 409s, isolation, group-scoped tokens."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from elastic_api.app import SERVICES
from tests.api.ecs.conftest import Ecs, assert_error
from tests.support import GUEST_DEADLINE

IMAGE = "a1b2c3d4-0000-4000-8000-000000000002"


@pytest.fixture
async def image(client: Any, tmp_path: Path) -> str:
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\x55" * (1 << 20))
    await client.app[SERVICES].imaging.add_standard(IMAGE, "Tiny OS 1", path)
    return "tiny-os-1"


async def until(condition: Any, what: str, timeout: float = GUEST_DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def finished(ecs: Ecs, action: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        reply = await ecs.get(f"/actions/{action}")
        assert reply.status == 200, reply.text
        found = reply.json["action"]
        return found if found["status"] != "in-progress" else None

    return await until(done, f"action {action}")


async def create(ecs: Ecs, **body: Any) -> dict[str, Any]:
    reply = await ecs.post("/servers", {"plan": "ECS1", "image": "tiny-os-1", "location": "local", "notes": "n",
                                        **body})
    assert reply.status == 200, reply.text
    return reply.json


async def booted(ecs: Ecs, **body: Any) -> str:
    made = await create(ecs, **body)
    action = await finished(ecs, made["action_id"])
    assert action["status"] == "completed", action
    return made["server"]["name"]


async def test_create_boot_power_rename_delete(ecs_alice: Ecs, image: str) -> None:
    made = await create(ecs_alice)
    server = made["server"]
    assert made["action_id"] == made["action"] and isinstance(made["action_id"], int)
    assert server["name"].startswith("ec") and len(server["name"]) == 8
    assert (server["status"], server["active_flag"], server["reserved_until"]) == ("Booting", False, "")
    assert server["plan_size"] == {"core": "1", "ram": "1024", "disk": "20", "gpu": "0", "gpu_label": None,
                                   "host_type": "ECS"}
    assert server["creation_date"].endswith("+00:00") and server["deletion_date"] is None
    assert server["api_version_value"] == 4 and server["group"] is None and server["so"] == image
    action = await finished(ecs_alice, made["action_id"])
    assert (action["status"], action["progress"], action["type"], action["resource"]) == (
        "completed", 100, "create_server", server["name"])
    name = server["name"]
    got = (await ecs_alice.get(f"/servers/{name}")).json["server"]
    assert (got["status"], got["active_flag"], got["progress"]) == ("Booted", True, 100)
    assert got["ipv4"].count(".") == 3
    assert (await ecs_alice.get(f"/servers/{name}/status")).json["server"] == {"name": name,
                                                                              "current_status": "Running"}
    # One engine: the ElasticHosts lists show the server and its drive, destroy there is refused.
    api = ecs_alice.api
    servers = (await api.get("/servers/info", as_json=True)).json
    [mine] = [s for s in servers if s["name"] == name]
    assert "ecs" in mine["tags"] and mine["status"] == "active"
    drives = (await api.get("/drives/info", as_json=True)).json
    [drive] = [d for d in drives if d["name"] == name]
    for path in (f"/servers/{mine['server']}/destroy", f"/drives/{drive['drive']}/destroy"):
        refused = await api.call(path)
        assert refused.status == 409 and "managed by the ECS API" in refused.text, refused.text
    # Power off (hard) and on.
    off = await ecs_alice.post(f"/servers/{name}/actions", {"type": "power_off"})
    assert off.status == 200 and off.json["type"] == "power_off" and "status" in off.json
    assert (await finished(ecs_alice, off.json["id"]))["status"] == "completed"
    assert (await ecs_alice.get(f"/servers/{name}/status")).json["server"]["current_status"] == "Stopped"
    on = await ecs_alice.post(f"/servers/{name}/actions", {"type": "power_on"})
    assert (await finished(ecs_alice, on.json["id"]))["status"] == "completed"
    assert (await ecs_alice.get(f"/servers/{name}/status")).json["server"]["current_status"] == "Running"
    console = await ecs_alice.post(f"/servers/{name}/actions", {"type": "console"})
    assert console.json["status"] == "completed"
    # Rename: `notes` or the docs' `note`.
    for key, value in (("notes", "web 1"), ("note", "web 2")):
        assert (await ecs_alice.call("PUT", f"/servers/{name}", {key: value})).json == {"status": "ok"}
        assert (await ecs_alice.get(f"/servers/{name}")).json["server"]["notes"] == value
    assert (await ecs_alice.call("PUT", f"/servers/{name}", raw=b"")).status == 200
    # Actions: newest first, the resource filter, offset paging.
    actions = (await ecs_alice.get("/actions")).json
    assert actions["total_actions"] == 4
    assert [a["type"] for a in actions["actions"]] == ["console", "power_on", "power_off", "create_server"]
    page = (await ecs_alice.get("/actions?start=1&length=2")).json
    assert [a["type"] for a in page["actions"]] == ["power_on", "power_off"] and page["total_actions"] == 4
    assert (await ecs_alice.get("/actions?resource=ec999999")).json["total_actions"] == 0
    # Delete: the server goes from both dialects.
    deleted = await ecs_alice.delete(f"/servers/{name}")
    assert deleted.status == 200 and deleted.json["action"]["type"] == "delete_server"
    assert (await finished(ecs_alice, deleted.json["action"]["id"]))["status"] == "completed"
    assert_error(await ecs_alice.get(f"/servers/{name}"), 404)
    assert (await ecs_alice.get("/servers")).json == {"status": "ok", "count": 0, "server": []}
    assert not [s for s in (await api.get("/servers/info", as_json=True)).json if s["name"] == name]
    assert not [d for d in (await api.get("/drives/info", as_json=True)).json if d["name"] == name]
