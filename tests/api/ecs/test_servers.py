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
from tests.conftest import Api
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
    reply = await ecs.post(
        "/servers", {"plan": "ECS1", "image": "tiny-os-1", "location": "local", "notes": "n", **body}
    )
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
    assert server["plan_size"] == {
        "core": "1",
        "ram": "1024",
        "disk": "20",
        "gpu": "0",
        "gpu_label": None,
        "host_type": "ECS",
    }
    assert server["creation_date"].endswith("+00:00") and server["deletion_date"] is None
    assert server["api_version_value"] == 4 and server["group"] is None and server["so"] == image
    action = await finished(ecs_alice, made["action_id"])
    assert (action["status"], action["progress"], action["type"], action["resource"]) == (
        "completed",
        100,
        "create_server",
        server["name"],
    )
    name = server["name"]
    got = (await ecs_alice.get(f"/servers/{name}")).json["server"]
    assert (got["status"], got["active_flag"], got["progress"]) == ("Booted", True, 100)
    assert got["ipv4"].count(".") == 3
    assert (await ecs_alice.get(f"/servers/{name}/status")).json["server"] == {
        "name": name,
        "current_status": "Running",
    }
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


async def test_create_errors(ecs_alice: Ecs, ecs_bob: Ecs, image: str) -> None:
    base = {"plan": "ECS1", "image": image, "location": "local", "notes": "n"}
    for change, status, words in (
        ({"plan": "ECS9"}, 400, "unknown plan"),
        ({"image": "nope"}, 400, "unknown image"),
        ({"location": "mars"}, 400, "unknown location"),
        ({"ssh_key": "nokey"}, 400, "unknown ssh_key"),
        ({"group": "eg999999"}, 404, "group not found"),
        ({"isolate_from": ["ec999999"]}, 404, "not found"),
        ({"isolate_from": "ec100001"}, 400, "list"),
        ({"isolate_from": [1]}, 400, "server names"),
        ({"reserved_plan": "M3PECS2"}, 400, "Invalid formula"),
        ({"reserved_plan": "nonsense"}, 400, "Invalid formula"),
        ({"reserved_plan": 99}, 404, "Reserved plan not found"),
        ({"support": "gold"}, 400, "Support code not found"),
        ({"password": "tab\there"}, 400, "password"),
        ({"user_customize": 3}, 400, "unknown user_customize"),
        ({"user_customize_env": "A=b"}, 400, "user_customize_env must be"),
        ({"networks": [{"name": "n", "vlans": [{"vlan_id": 7}]}]}, 400, "networks: unknown VLAN 7"),
        ({"networks": "x"}, 400, "networks must be a list"),
        ({"extra": 1}, 400, "unknown field"),
        ({"plan": 1}, 400, "string"),
    ):
        body = assert_error(await ecs_alice.post("/servers", {**base, **change}), status)
        assert words in body["message"], (change, body)
    assert_error(await ecs_alice.post("/servers", raw=b"{"), 400)
    assert_error(await ecs_alice.post("/servers", {"image": image}), 400)
    # The image by its UUID; nulls are "not given" (ecsapi's habit); a known key label is kept.
    made = await create(ecs_alice, image=IMAGE, group=None, ssh_key=None)
    assert made["server"]["ssh_key"] is None
    from tests.api.ecs.conftest import ssh_key

    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "laptop"})).status == 200
    keyed = await create(ecs_alice, ssh_key="laptop")
    assert (await ecs_alice.get(f"/servers/{keyed['server']['name']}")).json["server"]["ssh_key"] == "laptop"
    # Another user's server is not a partner one may name.
    assert_error(await ecs_bob.post("/servers", {**base, "isolate_from": [made["server"]["name"]]}), 404)
    assert (await ecs_alice.get("/servers")).json["count"] == 2


async def test_quota_is_checked_at_the_request(ecs_alice: Ecs, image: str, client: Any) -> None:
    await client.app[SERVICES].quotas.set(ecs_alice.user, ["servers=1"])
    first = await create(ecs_alice)  # its engine server may not exist yet: its quota is held
    body = assert_error(await ecs_alice.post("/servers", {"plan": "ECS1", "image": image, "location": "local"}), 403)
    assert "quota" in body["message"]
    assert (await finished(ecs_alice, first["action_id"]))["status"] == "completed"
    assert_error(await ecs_alice.post("/servers", {"plan": "ECS1", "image": image, "location": "local"}), 403)
    await client.app[SERVICES].quotas.set(ecs_alice.user, ["servers=default", "mem=1500"])
    assert_error(await ecs_alice.post("/servers", {"plan": "ECS1", "image": image, "location": "local"}), 403)


async def test_paging_servers_and_actions(ecs_alice: Ecs, image: str) -> None:
    names = [await booted(ecs_alice) for _ in range(3)]
    first = (await ecs_alice.get("/servers?limit=2")).json
    assert [s["name"] for s in first["server"]] == names[:2] and first["count"] == 2
    assert first["next"] == f"/ecs/v2/servers?limit=2&marker={names[1]}"
    last = (await ecs_alice.get(first["next"][len("/ecs/v2") :])).json
    assert [s["name"] for s in last["server"]] == names[2:] and "next" not in last
    for query in ("limit=0", "limit=x", "marker=ec999999", "limit=1&marker=nope"):
        assert_error(await ecs_alice.get(f"/servers?{query}"), 400)
    actions = (await ecs_alice.get("/actions?limit=2")).json
    assert len(actions["actions"]) == 2 and actions["total_actions"] == 3 and "next" in actions
    assert actions["actions"][0]["id"] > actions["actions"][1]["id"]  # newest first
    rest = (await ecs_alice.get(actions["next"][len("/ecs/v2") :])).json
    assert len(rest["actions"]) == 1 and "next" not in rest
    for query in ("start=0&limit=1", "length=1&marker=1", "start=-1", "length=0", "length=x", "start=1&start=2"):
        assert_error(await ecs_alice.get(f"/actions?{query}"), 400)
    assert (await ecs_alice.get(f"/actions?resource={names[0]}")).json["total_actions"] == 1
    assert_error(await ecs_alice.get("/actions/999999"), 404)
    assert_error(await ecs_alice.get("/actions/x"), 404)


async def test_busy_servers_answer_409(ecs_alice: Ecs, image: str, client: Any) -> None:
    from elastic_api.model import ecs as model
    from elastic_api.model.job import POWER_ON, ActionParams, Job

    services = client.app[SERVICES]
    name = await booted(ecs_alice)
    id_ = model.server_id(name)
    for status in (model.BOOTING, model.DELETING):
        await services.jobs.store.update_ecs_server(id_, status=status)
        assert_error(await ecs_alice.delete(f"/servers/{name}"), 409)
        assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "power_off"}), 409)
        assert (await ecs_alice.call("PUT", f"/servers/{name}", {"notes": status})).status == 200
    await services.jobs.store.update_ecs_server(id_, status=model.BOOTED)
    # An action waiting its turn (queued, not started here) makes the server busy too.
    await services.jobs.store.add_job(Job(0, POWER_ON, ecs_alice.user, name, ActionParams()))
    assert_error(await ecs_alice.delete(f"/servers/{name}"), 409)
    assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "power_on"}), 409)
    # Action bodies.
    for body, words in (
        ({}, "action type is required"),
        ({"type": "reboot"}, "unknown action type"),
        ({"type": "rollback"}, "snapshot is required"),
        ({"type": 1}, "string"),
    ):
        assert words in assert_error(await ecs_alice.post(f"/servers/{name}/actions", body), 400)["message"]
    assert_error(await ecs_alice.post("/servers/ec999999/actions", {"type": "power_on"}), 404)
    # A snapshot that is not this server's (none exists): 404, as any unknown object (ECS.md §6).
    assert (
        "snapshot not found"
        in assert_error(await ecs_alice.post(f"/servers/{name}/actions", {"type": "rollback", "snapshot": 5}), 404)[
            "message"
        ]
    )
    assert_error(await ecs_alice.get("/servers/ec999999/status"), 404)
    assert_error(await ecs_alice.call("PUT", "/servers/nonsense", {"notes": "x"}), 404)
    assert_error(await ecs_alice.call("PATCH", f"/servers/{name}", {"notes": "x"}), 405)


async def test_groups_attach_detach_and_confined_tokens(ecs_alice: Ecs, ecs_user: Any, image: str) -> None:
    group = (await ecs_alice.post("/groups", {"notes": "web", "password": "pw"})).json["group"]
    confined = await ecs_user(api=ecs_alice.api, group=group["name"])
    outside = await booted(ecs_alice)
    inside = await booted(confined)  # a confined token makes servers in its group
    assert (await ecs_alice.get(f"/servers/{inside}")).json["server"]["group"] == group["name"]
    assert [s["name"] for s in (await confined.get("/servers")).json["server"]] == [inside]
    for method, path in (
        ("GET", f"/servers/{outside}"),
        ("GET", f"/servers/{outside}/status"),
        ("DELETE", f"/servers/{outside}"),
        ("GET", f"/servers/{outside}/isolations"),
    ):
        assert_error(await confined.call(method, path), 404)
    assert_error(await confined.post(f"/servers/{outside}/actions", {"type": "power_off"}), 404)
    assert_error(await confined.call("PUT", f"/servers/{outside}", {"notes": "x"}), 404)
    assert_error(await confined.call("PUT", f"/servers/{inside}", {"group": "nogroup"}), 404)
    assert_error(
        await confined.post(
            "/servers", {"plan": "ECS1", "image": image, "location": "local", "isolate_from": [outside]}
        ),
        404,
    )
    assert {a["resource"] for a in (await confined.get("/actions")).json["actions"]} == {inside}
    outside_action = (await ecs_alice.get(f"/actions?resource={outside}")).json["actions"][0]["id"]
    assert_error(await confined.get(f"/actions/{outside_action}"), 404)
    # Attach and detach by name; an unknown group is 404; deleting a group detaches its servers.
    assert (await ecs_alice.call("PUT", f"/servers/{outside}", {"group": group["name"]})).status == 200
    assert {s["name"] for s in (await confined.get("/servers")).json["server"]} == {inside, outside}
    assert (await ecs_alice.call("PUT", f"/servers/{outside}", {"group": "nogroup"})).status == 200
    assert (await ecs_alice.get(f"/servers/{outside}")).json["server"]["group"] is None
    assert_error(await ecs_alice.call("PUT", f"/servers/{outside}", {"group": "eg999999"}), 404)
    assert (await ecs_alice.delete(f"/groups/{group['id']}")).status == 200
    assert (await ecs_alice.get(f"/servers/{inside}")).json["server"]["group"] is None


def two_host_config(tmp_path: Path, **extra: Any) -> Any:
    from elastic_api.config import Config, HostConfig
    from tests.support import libvirt_test_host

    hosts = tuple(
        HostConfig(name, f"test://{libvirt_test_host(tmp_path / f'{name}.xml', memory_mb=4096)}")
        for name in ("h1", "h2")
    )
    return Config(data_dir=tmp_path / "var", hosts=hosts, default_cipher="none", **extra)


async def test_isolation_is_strict_and_listed(tmp_path: Path, serve: Any, ecs_user: Any) -> None:
    from tests.conftest import make_app

    client = await serve(make_app(two_host_config(tmp_path)))
    services = client.app[SERVICES]
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\x55" * 4096)
    await services.imaging.add_standard(IMAGE, "Tiny OS 1", path)
    user, secret = await services.users.create("iso")
    ecs = Ecs(client, Api(client, user, secret), await services.tokens.create(user))
    a = await booted(ecs, notes="a")
    b = await booted(ecs, notes="b", isolate_from=[a])
    hosts = {r.config.name: r.host for r in await services.jobs.store.active_servers()}
    assert hosts[a] != hosts[b]
    assert (await ecs.get(f"/servers/{a}/isolations")).json == {
        "status": "ok",
        "isolations": [{"name": b, "notes": "b"}],
    }
    assert (await ecs.get(f"/servers/{b}/isolations")).json["isolations"] == [{"name": a, "notes": "a"}]
    # Both hosts taken: a third isolated from both has nowhere to go.
    made = await create(ecs, isolate_from=[a, b])
    action = await finished(ecs, made["action_id"])
    assert action["status"] == "failed" and "isolated" in action["error"]
    failed = (await ecs.get(f"/servers/{made['server']['name']}")).json["server"]
    assert (failed["status"], failed["active_flag"]) == ("Fail", False)
    assert not [d for d in await services.jobs.store.list_drives(user, None, None) if d.name == failed["name"]]
    # /plans/availables: per host, the caller's servers on it.
    plan = next(p for p in (await ecs.get("/plans/availables")).json["plans"] if p["name"] == "ECS1")
    on = {h["host"]: [s["name"] for s in h["servers"]] for h in plan["region_availables"][0]["hosts"]}
    assert on == {hosts[a]: [a], hosts[b]: [b]}
    # A Fail server is deleted like any other.
    deleted = await ecs.delete(f"/servers/{failed['name']}")
    assert (await finished(ecs, deleted.json["action"]["id"]))["status"] == "completed"
    # Powering an isolated server back on honours the pairs too: a's host is b's no more.
    off = await ecs.post(f"/servers/{a}/actions", {"type": "power_off"})
    assert (await finished(ecs, off.json["id"]))["status"] == "completed"
    on_again = await ecs.post(f"/servers/{a}/actions", {"type": "power_on"})
    assert (await finished(ecs, on_again.json["id"]))["status"] == "completed"
    hosts = {r.config.name: r.host for r in await services.jobs.store.active_servers()}
    assert hosts[a] != hosts[b]


async def test_a_restart_mid_create_resumes_it(tmp_path: Path) -> None:
    """The app stops while a create images its drive; the next start finishes it (create is
    resumable), and nothing is left in progress."""
    from tests.conftest import make_app, started_client

    config = two_host_config(tmp_path)
    client = await started_client(make_app(config))
    services = client.app[SERVICES]
    path = tmp_path / "big.raw"
    path.write_bytes(b"\x01" * (256 << 20))  # slow enough to stop part-way
    await services.imaging.add_standard(IMAGE, "Tiny OS 1", path)
    user, secret = await services.users.create("restart")
    token = await services.tokens.create(user)
    ecs = Ecs(client, Api(client, user, secret), token)
    made = await create(ecs)
    name = made["server"]["name"]

    async def imaging() -> bool:
        server = (await ecs.get(f"/servers/{name}")).json["server"]
        return server["progress"] >= 10

    await until(imaging, "the create to reach imaging")
    await client.close()
    client = await started_client(make_app(config))
    ecs = Ecs(client, ecs.api, token)
    try:
        action = await finished(ecs, made["action_id"])
        assert action["status"] == "completed", action
        assert (await ecs.get(f"/servers/{name}")).json["server"]["status"] == "Booted"
        assert all(a["status"] != "in-progress" for a in (await ecs.get("/actions")).json["actions"])
    finally:
        await client.close()


async def test_a_restart_fails_an_interrupted_power_action(tmp_path: Path) -> None:
    """A power action is not re-run after a restart (the owner may have changed things since):
    it fails; nothing is left in progress."""
    from elastic_api.model.job import POWER_OFF, ActionParams, Job
    from tests.conftest import make_app, started_client

    config = two_host_config(tmp_path)
    client = await started_client(make_app(config))
    services = client.app[SERVICES]
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\x55" * 4096)
    await services.imaging.add_standard(IMAGE, "Tiny OS 1", path)
    user, secret = await services.users.create("power")
    token = await services.tokens.create(user)
    ecs = Ecs(client, Api(client, user, secret), token)
    name = await booted(ecs)
    # A power-off this node had claimed when it died (stored as running under its lease).
    store = services.jobs.store
    job = await store.add_job(Job(0, POWER_OFF, user, name, ActionParams(), created=time.time_ns()))
    assert await store.claim_job(job.id, services.jobs.holder, time.time_ns(), time.time_ns() + 10**12)
    await client.close()
    client = await started_client(make_app(config))
    ecs = Ecs(client, ecs.api, token)
    try:
        action = (await ecs.get(f"/actions/{job.id}")).json["action"]
        assert action["status"] == "failed" and "interrupted" in action["error"], action
        assert (await ecs.get(f"/servers/{name}")).json["server"]["status"] == "Booted"
        assert all(a["status"] != "in-progress" for a in (await ecs.get("/actions")).json["actions"])
    finally:
        await client.close()


async def test_support_and_reserved_records(ecs_alice: Ecs, ecs_bob: Ecs, image: str) -> None:
    made = await create(ecs_alice, support="basic", reserved_plan="M3PECS1")
    server = made["server"]
    name = server["name"]
    assert server["support"]["support_code"] == "basic" and server["support"]["server__name"] == name
    assert server["is_reserved"] is True and server["reserved_until"].endswith("+00:00")
    assert [r["reserved_months"] for r in server["reserved_plans"]] == [3]
    await finished(ecs_alice, made["action_id"])
    # A reserved server cannot be deleted before its term ends.
    assert "reserved" in assert_error(await ecs_alice.delete(f"/servers/{name}"), 409)["message"]
    changed = await ecs_alice.post(f"/servers/{name}/support", {"code": "global"})
    assert changed.status == 200 and changed.json["support"]["support_code"] == "global"
    assert (await ecs_alice.delete(f"/servers/{name}/support")).json == {"status": "ok"}
    assert (await ecs_alice.get(f"/servers/{name}")).json["server"]["support"] is None
    assert_error(await ecs_alice.delete(f"/servers/{name}/support"), 404)
    chained = await ecs_alice.post(f"/servers/{name}/reserved", {"reserved_plan": 1})
    assert chained.status == 200 and chained.json["server"] == name and chained.json["reserved_months"] == 3
    shown = (await ecs_alice.get(f"/servers/{name}")).json["server"]
    assert len(shown["reserved_plans"]) == 2
    # What ecsapi's strict models make of it (support and reservations included).
    import os

    os.environ["ECSAPI_ENV_FILE"] = "/dev/null"
    import ecsapi

    parsed = ecsapi.Server.model_validate(shown)
    assert parsed.is_reserved and len(parsed.reserved_plans) == 2 and parsed.support is None
    assert ecsapi.Server.model_validate(server).support.support_code == "basic"
    for path, body in (
        (f"/servers/{name}/support", {"code": "basic"}),
        (f"/servers/{name}/reserved", {"reserved_plan": 1}),
    ):
        assert_error(await ecs_bob.post(path, body), 404)
    assert_error(await ecs_alice.post(f"/servers/{name}/reserved", {"reserved_plan": True}), 400)
    # Without a reservation, the same server deletes.
    plain = await booted(ecs_alice)
    deleted = await ecs_alice.delete(f"/servers/{plain}")
    assert (await finished(ecs_alice, deleted.json["action"]["id"]))["status"] == "completed"


async def test_server_calls_are_in_the_audit_trail(ecs_alice: Ecs, image: str) -> None:
    name = await booted(ecs_alice)
    assert (await ecs_alice.call("PUT", f"/servers/{name}", {"notes": "x"})).status == 200

    async def logged() -> list[tuple[str, str]] | None:
        entries = [(e["action"], e["target"]) for e in (await ecs_alice.get("/logs")).json["logs"]]
        return entries if len(entries) >= 2 else None

    entries = await until(logged, "the audit entries")
    assert ("PUT /servers/{name}", name) in entries and ("POST /servers", name) in entries


async def test_metrics_name_the_server_and_carry_every_series(ecs_alice: Ecs, ecs_bob: Ecs, image: str) -> None:
    name = await booted(ecs_alice)
    reply = await ecs_alice.get(f"/servers/{name}/metrics")
    assert reply.status == 200, reply.text
    # No sample yet at the default metrics_interval (300 s): every series is there, empty. The
    # points themselves are the engine's rates (tests/api/test_metrics_libvirt.py on a real guest)
    # in this dialect's shape (tests/api/ecs/test_metrics_render.py).
    assert reply.json == {
        "metrics": {
            "resource": name,
            "core": [],
            "disk": {"reads": [], "writes": []},
            "network": {"received": [], "transmitted": []},
        }
    }
    assert (await ecs_bob.get(f"/servers/{name}/metrics")).status == 404
    assert (await ecs_alice.get("/servers/ec999999/metrics")).status == 404
