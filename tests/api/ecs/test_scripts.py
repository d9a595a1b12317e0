"""`/scripts` over HTTP: the CloudScript shape, per-user scoping, PATCH with nulls, paging, the
refusals (each a 400 in the ECS error shape, nothing stored), and the audit trail."""

from __future__ import annotations

import pytest

from tests.api.ecs.conftest import assert_error

SCRIPT = {"title": "hello", "content": "#!/bin/sh\necho hello > /tmp/hello\n", "windows": False}


async def patch(ecs, path, body):
    return await ecs.call("PATCH", path, body)


async def test_made_listed_read_changed_and_deleted(ecs_alice):
    assert (await ecs_alice.get("/scripts")).json == {"status": "ok", "scripts": []}
    made = await ecs_alice.post("/scripts", SCRIPT)
    assert made.status == 200, made.text
    script = made.json["script"]
    assert made.json["status"] == "ok"
    assert {k: script[k] for k in ("user", "title", "content", "windows", "public", "category")} == {
        "user": ecs_alice.user,
        "title": "hello",
        "content": SCRIPT["content"],
        "windows": False,
        "public": False,
        "category": None,
    }
    assert isinstance(script["id"], int)
    assert (await ecs_alice.get("/scripts")).json["scripts"] == [script]
    assert (await ecs_alice.get(f"/scripts/{script['id']}")).json == {"status": "ok", "script": script}
    # ecsapi sends every field, null for "unchanged".
    renamed = await patch(ecs_alice, f"/scripts/{script['id']}", {"title": "hi", "content": None, "windows": None})
    assert renamed.status == 200, renamed.text
    assert renamed.json["script"] == {**script, "title": "hi"}
    unchanged = await patch(ecs_alice, f"/scripts/{script['id']}", {})
    assert unchanged.json["script"] == {**script, "title": "hi"}
    assert (await ecs_alice.delete(f"/scripts/{script['id']}")).json == {"status": "ok"}
    assert_error(await ecs_alice.get(f"/scripts/{script['id']}"), 404)
    assert_error(await ecs_alice.delete(f"/scripts/{script['id']}"), 404)


async def test_windows_defaults_to_false(ecs_alice):
    made = await ecs_alice.post("/scripts", {"title": "t", "content": "echo"})
    assert made.status == 200 and made.json["script"]["windows"] is False


async def test_a_script_of_the_limit_is_taken(ecs_alice):
    made = await ecs_alice.post("/scripts", {"title": "t", "content": "#!/bin/sh\n" + "x" * (32 * 1024 - 10)})
    assert made.status == 200, made.text[:200]


async def test_another_users_script_is_unknown(ecs_alice, ecs_bob):
    script = (await ecs_alice.post("/scripts", SCRIPT)).json["script"]
    for answer in (
        await ecs_bob.get(f"/scripts/{script['id']}"),
        await patch(ecs_bob, f"/scripts/{script['id']}", {"title": "mine"}),
        await ecs_bob.delete(f"/scripts/{script['id']}"),
    ):
        assert_error(answer, 404)
    assert (await ecs_bob.get("/scripts")).json["scripts"] == []
    assert (await ecs_alice.get(f"/scripts/{script['id']}")).json["script"] == script


@pytest.mark.parametrize("path", ["/scripts/0", "/scripts/999999", "/scripts/abc", "/scripts/-1"])
async def test_unknown_scripts_are_404(ecs_alice, path):
    assert_error(await ecs_alice.get(path), 404)
    assert_error(await patch(ecs_alice, path, {"title": "x"}), 404)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"content": "echo"}, "title is required"),
        ({"title": "t"}, "content is required"),
        ({"title": "", "content": "echo"}, "title"),
        ({"title": "t" * 256, "content": "echo"}, "title"),
        ({"title": "t", "content": ""}, "empty"),
        ({"title": "t", "content": "x" * (32 * 1024 + 1)}, "larger than 32768 bytes"),
        ({"title": "t", "content": "#!bash\necho"}, "Cannot use relative path in user script"),
        ({"title": "t", "content": "echo", "windows": "yes"}, "windows"),
        ({"title": 5, "content": "echo"}, "title"),
        ({"title": "t", "content": "echo", "public": True}, "unknown field"),
    ],
)
async def test_bad_scripts_are_400(ecs_alice, body, words):
    assert words in assert_error(await ecs_alice.post("/scripts", body), 400)["message"]
    assert (await ecs_alice.get("/scripts")).json["scripts"] == []


async def test_bad_changes_are_400_and_change_nothing(ecs_alice):
    script = (await ecs_alice.post("/scripts", {**SCRIPT, "content": "#!relative\n", "windows": True})).json["script"]
    path = f"/scripts/{script['id']}"
    assert "relative path" in assert_error(await patch(ecs_alice, path, {"windows": False}), 400)["message"]
    assert_error(await patch(ecs_alice, path, {"title": ""}), 400)
    assert_error(await patch(ecs_alice, path, {"content": "x" * (32 * 1024 + 1)}), 400)
    assert_error(await patch(ecs_alice, path, {"owner": "x"}), 400)
    assert (await ecs_alice.get(path)).json["script"] == script


async def test_pages(ecs_alice):
    ids = [(await ecs_alice.post("/scripts", {**SCRIPT, "title": f"s{i}"})).json["script"]["id"] for i in range(3)]
    first = (await ecs_alice.get("/scripts?limit=2")).json
    assert [s["id"] for s in first["scripts"]] == ids[:2]
    assert first["next"] == f"/ecs/v2/scripts?limit=2&marker={ids[1]}"
    last = (await ecs_alice.get(first["next"][len("/ecs/v2") :])).json
    assert [s["id"] for s in last["scripts"]] == ids[2:] and "next" not in last
    assert_error(await ecs_alice.get("/scripts?marker=999999"), 400)
    assert_error(await ecs_alice.get("/scripts?limit=0"), 400)


async def test_changes_are_in_the_audit_trail(ecs_alice):
    script = (await ecs_alice.post("/scripts", SCRIPT)).json["script"]
    await patch(ecs_alice, f"/scripts/{script['id']}", {"title": "x"})
    await ecs_alice.delete(f"/scripts/{script['id']}")
    await ecs_alice.get("/scripts")
    logs = (await ecs_alice.get("/logs")).json["logs"]
    assert [(e["action"], e["target"], e["status"]) for e in logs] == [
        ("DELETE /scripts/{id}", str(script["id"]), "ok"),
        ("PATCH /scripts/{id}", str(script["id"]), "ok"),
        ("POST /scripts", str(script["id"]), "ok"),
    ]
