"""The audit trail through both dialects in-process: every changing call recorded (who, how
signed in, what route, on what, how it ended), nothing for reads or calls without credentials,
no secret in any row, and `/ecs/v2/logs` paging, filtering and isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
from typing import Any

import pytest

from elastic_api.app import SERVICES
from elastic_api.model.audit import AuditEntry, AuditQuery
from tests.api.ecs.conftest import Ecs, assert_error, ssh_key


async def logs(ecs: Ecs, query: str = "") -> dict[str, Any]:
    answer = await ecs.get("/logs" + query)
    assert answer.status == 200, answer.text
    return answer.json


def rows(config: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(config.db_path) as db:
        return db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()


async def test_ecs_changing_calls_are_recorded_and_reads_are_not(ecs_alice, client):
    await ecs_alice.get("/sshkeys")
    await ecs_alice.get("/plans")
    await ecs_alice.post("/regions/availables", {"plan": "ECS1"})  # a question in a body: a read
    assert (await logs(ecs_alice)) == {"status": "ok", "total_logs": 0, "logs": []}

    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "k"})).status == 200
    key = (await ecs_alice.get("/sshkeys")).json["pubkeys"][0]["id"]
    assert (await ecs_alice.delete(f"/sshkeys/{key}")).status == 200
    assert (await ecs_alice.delete("/sshkeys/99999")).status == 404
    assert (await ecs_alice.post("/groups", {"bad": 1})).status == 400

    body = await logs(ecs_alice)
    assert body["total_logs"] == 4
    newest, refused, deleted, added = body["logs"]
    assert [e["action"] for e in body["logs"]] == [
        "POST /groups",
        "DELETE /sshkeys/{id}",
        "DELETE /sshkeys/{id}",
        "POST /sshkeys",
    ]
    assert added["target"] == str(key) and deleted["target"] == str(key)  # made, then named in the path
    assert refused["target"] == "99999" and newest["target"] is None
    assert [(e["status"], e["status_code"], e["severity"]) for e in body["logs"]] == [
        ("refused", 400, "warning"),
        ("refused", 404, "warning"),
        ("ok", 200, "info"),
        ("ok", 200, "info"),
    ]
    for entry in body["logs"]:
        assert entry["actor"] == ecs_alice.user and entry["actor_type"] == "api_token"
        assert entry["dialect"] == "ecs" and entry["group"] is None
        assert dt.datetime.fromisoformat(entry["created_at"]).utcoffset() == dt.timedelta(0)
        assert isinstance(entry["id"], int)
    assert [e["id"] for e in body["logs"]] == sorted((e["id"] for e in body["logs"]), reverse=True)
    one = await ecs_alice.get(f"/logs/{added['id']}")
    assert one.status == 200 and one.json == {"status": "ok", "log": added}


async def test_calls_without_credentials_are_not_recorded(ecs_alice, client):
    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "k"}, token=False)).status == 401
    assert (await ecs_alice.call("PATCH", "/sshkeys")).status == 405  # no such method: not a call
    assert (await client.post("/drives/create", data="name d\nsize 1M\n")).status == 401
    assert (await logs(ecs_alice))["total_logs"] == 0
    assert rows(client.app[SERVICES].drives.config) == []


async def test_elastichosts_changing_calls_are_recorded(ecs_alice, client):
    alice = ecs_alice.api
    drive = (await alice.create_drive())["drive"]
    assert (await alice.call(f"/drives/{drive}/set", {"name": "e"})).status == 200
    await alice.call("/drives/list")  # POST, but a read
    await alice.get(f"/drives/{drive}/info")
    server = (await alice.call("/servers/create/stopped", {"name": "s", "cpu": "1000", "mem": "64"})).props()["server"]
    vlan = (await alice.call("/resources/vlan/create", {"name": "v"})).props()["resource"]
    assert (await alice.call(f"/servers/{server}/destroy")).status == 204
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await alice.call(f"/drives/{missing}/destroy")).status == 404

    body = await logs(ecs_alice)
    got = [(e["dialect"], e["actor_type"], e["action"], e["target"], e["status_code"]) for e in reversed(body["logs"])]
    assert got == [
        ("elastichosts", "basic", "POST /drives/create", drive, 200),
        ("elastichosts", "basic", "POST /drives/{drive}/set", drive, 200),
        ("elastichosts", "basic", "POST /servers/create/stopped", server, 200),
        ("elastichosts", "basic", "POST /resources/{type}/create", vlan, 200),
        ("elastichosts", "basic", "POST /servers/{server}/destroy", server, 204),
        ("elastichosts", "basic", "POST /drives/{drive}/destroy", missing, 404),
    ]
    assert (await logs(ecs_alice, f"?resource={server}"))["total_logs"] == 2


async def test_login_tokens_and_group_tokens_are_told_apart(ecs_alice, ecs_user, client):
    alice = ecs_alice.api
    login = await client.post("/ecs/v2/login", json={"username": alice.user, "password": alice.secret})
    assert login.status == 200
    logged_in = Ecs(client, alice, (await login.json())["token"])
    group = (await ecs_alice.post("/groups", {"notes": "n", "password": "pw"})).json["group"]["name"]
    confined = await ecs_user(api=alice, group=group)
    assert (await logged_in.post("/sshkeys", {"key": ssh_key(), "label": "by-login"})).status == 200
    assert (await confined.post("/sshkeys", {"key": ssh_key(), "label": "by-group"})).status == 200

    everything = (await logs(ecs_alice))["logs"]
    assert [(e["actor_type"], e["group"]) for e in everything] == [
        ("api_token", group),
        ("login_token", None),
        ("api_token", None),
    ]
    # A token confined to a group (a sub-project) sees the calls made through that group only.
    seen = await logs(confined)
    assert seen["total_logs"] == 1 and seen["logs"][0]["group"] == group
    others = everything[1]["id"]
    assert_error(await confined.get(f"/logs/{others}"), 404)
    assert (await confined.get(f"/logs/{seen['logs'][0]['id']}")).status == 200


async def test_no_secret_reaches_the_trail(ecs_alice, client):
    alice = ecs_alice.api
    services = client.app[SERVICES]
    secrets = [alice.secret, ecs_alice.token]
    login = await client.post("/ecs/v2/login", json={"username": alice.user, "password": alice.secret})
    secrets.append((await login.json())["token"])
    key = ssh_key(payload=b"secret-key-material-" * 3)
    secrets += [key, key.split()[1]]
    assert (await ecs_alice.post("/sshkeys", {"key": key, "label": "label-secret"})).status == 200
    assert (await ecs_alice.post("/groups", {"notes": "n", "password": "group-password-xyz"})).status == 200
    assert (await ecs_alice.post("/groups", {"notes": "n", "password": "refused-pw", "x": 1})).status == 400
    secrets += ["group-password-xyz", "refused-pw", "label-secret"]
    drive = (await alice.create_drive(name="drive-name-secret"))["drive"]
    assert (await alice.call(f"/drives/{drive}/set", {"user:note": "private-note"})).status == 200
    secrets += ["drive-name-secret", "private-note"]
    await services.audit.flush()
    text = "\n".join(repr(row) for row in rows(services.drives.config))
    assert len(rows(services.drives.config)) == 5
    for secret in secrets:
        assert secret not in text, secret


async def test_paging_by_offset_and_by_marker(ecs_alice, ecs_bob):
    for n in range(7):
        assert (await ecs_alice.post("/groups", {"notes": f"g{n}", "password": "p"})).status == 200
    everything = (await logs(ecs_alice))["logs"]
    ids = [e["id"] for e in everything]
    assert len(ids) == 7

    page = await logs(ecs_alice, "?start=2&length=3")
    assert page["total_logs"] == 7 and [e["id"] for e in page["logs"]] == ids[2:5] and "next" not in page
    assert [e["id"] for e in (await logs(ecs_alice, "?start=6"))["logs"]] == ids[6:]
    assert (await logs(ecs_alice, "?start=50"))["logs"] == []

    first = await logs(ecs_alice, "?limit=3")
    assert [e["id"] for e in first["logs"]] == ids[:3]
    assert first["next"] == f"/ecs/v2/logs?limit=3&marker={ids[2]}"
    second = await logs(ecs_alice, f"?limit=3&marker={ids[2]}")
    assert [e["id"] for e in second["logs"]] == ids[3:6] and "next" in second
    last = await logs(ecs_alice, f"?limit=3&marker={ids[5]}")
    assert [e["id"] for e in last["logs"]] == ids[6:] and "next" not in last
    assert "next" not in await logs(ecs_alice, f"?limit=1&marker={ids[5]}")
    assert (await logs(ecs_alice, "?limit=7"))["logs"] == everything and "next" not in await logs(ecs_alice, "?limit=7")

    for bad in (
        "?start=0&limit=2",
        "?length=2&marker=1",
        "?length=0",
        "?length=1001",
        "?start=-1",
        "?start=x",
        "?limit=0",
        "?marker=x",
        "?marker=99999",
        "?resource=",
        "?start=1&start=2",
    ):
        assert_error(await ecs_alice.get("/logs" + bad), 400)
    # Another user's entry is unknown: 404 by id, 400 as a marker; bob sees none of alice's.
    assert_error(await ecs_bob.get(f"/logs/{ids[0]}"), 404)
    assert_error(await ecs_bob.get("/logs/99999999"), 404)
    assert_error(await ecs_bob.get("/logs/x"), 404)
    assert_error(await ecs_bob.get(f"/logs?limit=1&marker={ids[0]}"), 400)
    assert (await logs(ecs_bob))["total_logs"] == 0


async def test_resource_filters_by_target(ecs_alice):
    made = [(await ecs_alice.post("/groups", {"notes": "n", "password": "p"})).json["group"]["id"] for _ in range(2)]
    assert (await ecs_alice.delete(f"/groups/{made[0]}")).status == 200
    only = await logs(ecs_alice, f"?resource={made[0]}")
    assert only["total_logs"] == 2
    assert [e["action"] for e in only["logs"]] == ["DELETE /groups/{id}", "POST /groups"]
    paged = await logs(ecs_alice, f"?resource={made[0]}&limit=1")
    assert paged["next"] == f"/ecs/v2/logs?resource={made[0]}&limit=1&marker={only['logs'][0]['id']}"
    assert_error(await ecs_alice.get(f"/logs?resource={made[1]}&limit=1&marker={only['logs'][0]['id']}"), 400)


class FailingStore:
    """The real store, but recording the trail fails."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def insert_audit(self, entries: Any) -> None:
        raise OSError("disk on fire")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_failure_to_record_never_fails_the_call(ecs_alice, client, caplog):
    audit = client.app[SERVICES].audit
    audit.store = FailingStore(audit.store)
    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "k"})).status == 200
    assert (await ecs_alice.post("/groups", {"notes": "n", "password": "p"})).status == 200
    assert (await logs(ecs_alice))["total_logs"] == 0
    assert audit.dropped == 2 and "could not record 2 audit entries" in caplog.text


@pytest.fixture
def config(config):
    # Long enough that a burst is written only when read (or at close): counts are not timed.
    return dataclasses.replace(config, audit_flush_seconds=30, audit_batch=8)


async def test_a_burst_of_calls_takes_few_transactions(ecs_alice, client):
    audit = client.app[SERVICES].audit
    before = audit.transactions
    answers = await asyncio.gather(*(ecs_alice.post("/groups", {"notes": str(n), "password": "p"}) for n in range(20)))
    assert all(a.status == 200 for a in answers)
    alice = ecs_alice.api
    for n in range(12):
        assert (await alice.call("/drives/create", f"name d{n}\nsize 1M\n")).status == 200
    assert (await logs(ecs_alice, "?length=100"))["total_logs"] == 32
    # 32 entries in groups of at most 8: 4 transactions, not 32.
    assert audit.transactions - before == 4
    total, newest = await audit.page(alice.user, AuditQuery(limit=1))
    assert total == 32 and isinstance(newest[0], AuditEntry) and newest[0].route == "/drives/create"
