"""The isolation matrix of the ECS dialect: user B on user A's SSH keys, groups and scripts answers
exactly like a number nothing has (404 for paths, 400 for markers), and A's objects are unchanged.
Servers and actions likewise. (The ElasticHosts matrix is tests/api/test_isolation.py; a token
confined to a group is covered in test_sshkeys_groups.py and test_servers.py.)"""

from __future__ import annotations

from tests.api.ecs.conftest import ssh_key

PROBES = (
    ("GET", "/sshkeys/{key}", 404),
    ("DELETE", "/sshkeys/{key}", 404),
    ("GET", "/groups/{group}", 404),
    ("DELETE", "/groups/{group}", 404),
    ("GET", "/sshkeys?limit=1&marker={key}", 400),
    ("GET", "/groups?limit=1&marker={group}", 400),
    ("GET", "/scripts/{script}", 404),
    ("PATCH", "/scripts/{script}", 404),
    ("DELETE", "/scripts/{script}", 404),
    ("GET", "/scripts?limit=1&marker={script}", 400),
)


async def test_the_ecs_isolation_matrix(ecs_alice, ecs_bob):
    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "private"})).status == 200
    key = (await ecs_alice.get("/sshkeys")).json["pubkeys"][0]["id"]
    group = (await ecs_alice.post("/groups", {"notes": "private", "password": "p"})).json["group"]["id"]
    assert (await ecs_bob.post("/sshkeys", {"key": ssh_key(), "label": "bobs"})).status == 200
    assert (await ecs_bob.post("/groups", {"notes": "bobs", "password": "p"})).status == 200
    script = (await ecs_alice.post("/scripts", {"title": "private", "content": "echo"})).json["script"]["id"]
    assert (await ecs_bob.post("/scripts", {"title": "bobs", "content": "echo"})).status == 200
    before = [(await ecs_alice.get(p)).json for p in ("/sshkeys", "/groups", "/scripts")]
    # Stand-ins of the same length that nothing has, so even Content-Length must match.
    victims = {"key": str(key), "group": str(group), "script": str(script)}
    stand_ins = {"key": str(key + 7), "group": str(group + 7), "script": str(script + 7)}
    for method, path, status in PROBES:
        answers = []
        for names in (victims, stand_ins):
            answer = await ecs_bob.call(method, path.format(**names))
            text = answer.text
            for name, value in names.items():
                text = text.replace(value, victims[name])
            headers = {k: v for k, v in answer.headers.items() if k.lower() != "date"}
            answers.append((answer.status, headers, text))
        assert answers[0][0] == status, (method, path, answers[0])
        assert answers[0] == answers[1], (method, path)
    assert [(await ecs_alice.get(p)).json for p in ("/sshkeys", "/groups", "/scripts")] == before


async def test_lists_show_only_the_users_own(ecs_alice, ecs_bob):
    await ecs_alice.post("/sshkeys", {"key": ssh_key(comment="alice-only"), "label": "alice-label"})
    await ecs_alice.post("/groups", {"notes": "alice-notes", "password": "p"})
    await ecs_alice.post("/scripts", {"title": "alice-title", "content": "echo alice"})
    for path in ("/sshkeys", "/groups", "/scripts"):
        text = (await ecs_bob.get(path)).text
        assert "alice" not in text, path


SERVER_PROBES = (
    ("GET", "/servers/{server}", None, 404),
    ("PUT", "/servers/{server}", {"notes": "mine"}, 404),
    ("PUT", "/servers/{server}", {"group": "nogroup"}, 404),
    ("DELETE", "/servers/{server}", None, 404),
    ("GET", "/servers/{server}/status", None, 404),
    ("GET", "/servers/{server}/isolations", None, 404),
    ("GET", "/servers/{server}/metrics", None, 404),
    ("POST", "/servers/{server}/support", {"code": "basic"}, 404),
    ("DELETE", "/servers/{server}/support", None, 404),
    ("POST", "/servers/{server}/reserved", {"reserved_plan": 1}, 404),
    ("POST", "/servers/{server}/actions", {"type": "power_off"}, 404),
    ("POST", "/servers/{server}/actions", {"type": "console"}, 404),
    ("GET", "/actions/{action}", None, 404),
    ("GET", "/servers?limit=1&marker={server}", None, 400),
    ("GET", "/actions?limit=1&marker={action}", None, 400),
    ("GET", "/actions?resource={server}", None, 200),
    (
        "POST",
        "/servers",
        {"plan": "ECS1", "image": "tiny-os-1", "location": "local", "isolate_from": ["{server}"]},
        404,
    ),
)


async def test_the_ecs_isolation_matrix_of_servers(ecs_alice, ecs_bob, client, tmp_path):
    import asyncio
    import json

    from elastic_api.app import SERVICES

    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\x55" * 4096)
    await client.app[SERVICES].imaging.add_standard("a1b2c3d4-0000-4000-8000-000000000003", "Tiny OS 1", path)
    made = (await ecs_alice.post("/servers", {"plan": "ECS1", "image": "tiny-os-1", "location": "local"})).json
    server, action = made["server"]["name"], made["action_id"]
    while (await ecs_alice.get(f"/actions/{action}")).json["action"]["status"] == "in-progress":
        await asyncio.sleep(0.05)
    before = [(await ecs_alice.get(p)).json for p in ("/servers", "/actions")]
    victims = {"server": server, "action": str(action)}
    stand_ins = {"server": f"ec{int(server[2:]) + 7}", "action": str(action + 7)}
    for method, path_, body, status in SERVER_PROBES:
        answers = []
        for names in (victims, stand_ins):
            sent = json.loads(json.dumps(body).replace("{server}", names["server"])) if body else None
            answer = await ecs_bob.call(method, path_.format(**names), sent)
            text = answer.text
            for name, value in names.items():
                text = text.replace(value, victims[name])
            headers = {k: v for k, v in answer.headers.items() if k.lower() != "date"}
            answers.append((answer.status, headers, text))
        assert answers[0][0] == status, (method, path_, answers[0])
        assert answers[0] == answers[1], (method, path_)
    assert [(await ecs_alice.get(p)).json for p in ("/servers", "/actions")] == before
    assert (await ecs_bob.get("/servers")).json["count"] == 0
