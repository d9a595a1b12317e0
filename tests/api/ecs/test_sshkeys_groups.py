"""`/sshkeys` and `/groups`: validation, uniqueness, deletion, group-confined tokens."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from tests.api.ecs.conftest import assert_error, ssh_key

RSA = ssh_key("ssh-rsa", "laptop", b"\x00\x00\x00\x03\x01\x00\x01" + b"n" * 256)


async def test_keys_are_added_listed_read_and_deleted(ecs_alice):
    assert (await ecs_alice.get("/sshkeys")).json == {"status": "ok", "pubkeys": []}
    added = await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "work"})
    assert added.status == 200 and added.json["status"] == "ok", added.text
    assert (await ecs_alice.post("/sshkeys", {"key": RSA, "label": "home"})).status == 200
    keys = (await ecs_alice.get("/sshkeys")).json["pubkeys"]
    assert [k["label"] for k in keys] == ["work", "home"]
    first = keys[0]
    assert first["key"] == ssh_key() and isinstance(first["id"], int)
    assert dt.datetime.fromisoformat(first["created_at"]).utcoffset() == dt.timedelta(0)
    one = await ecs_alice.get(f"/sshkeys/{first['id']}")
    assert one.json == {"status": "ok", "pubkey": first}
    assert (await ecs_alice.delete(f"/sshkeys/{first['id']}")).json == {"status": "ok"}
    assert_error(await ecs_alice.get(f"/sshkeys/{first['id']}"), 404)
    assert_error(await ecs_alice.delete(f"/sshkeys/{first['id']}"), 404)
    assert [k["label"] for k in (await ecs_alice.get("/sshkeys")).json["pubkeys"]] == ["home"]


async def test_a_duplicate_label_is_409(ecs_alice, ecs_bob):
    assert (await ecs_alice.post("/sshkeys", {"key": ssh_key(), "label": "same"})).status == 200
    assert_error(await ecs_alice.post("/sshkeys", {"key": RSA, "label": "same"}), 409)
    # Labels are unique per user: another user may use the same one.
    assert (await ecs_bob.post("/sshkeys", {"key": ssh_key(), "label": "same"})).status == 200


def _blob(kind: str) -> str:
    return base64.b64encode(len(kind).to_bytes(4, "big") + kind.encode()).decode()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "ssh-ed25519",
        "ssh-foo " + _blob("ssh-foo"),
        "ssh-rsa not*base64",
        "ssh-rsa " + _blob("ssh-ed25519"),  # the blob names another type
        "ssh-ed25519 AAAA",  # too short to name a type
        "ssh-ed25519 " + _blob("ssh-ed25519") + " two\x00words",
        "ssh-rsa " + "A" * 9000,
    ],
)
async def test_bad_keys_are_400(ecs_alice, key):
    assert_error(await ecs_alice.post("/sshkeys", {"key": key, "label": "x"}), 400)
    assert (await ecs_alice.get("/sshkeys")).json["pubkeys"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"key": ssh_key()},
        {"label": "x"},
        {"key": ssh_key(), "label": ""},
        {"key": ssh_key(), "label": "a\nb"},
        {"key": ssh_key(), "label": 7},
        {"key": None, "label": "x"},
        {"key": ssh_key(), "label": "x", "comment": "unknown field"},
    ],
)
async def test_bad_key_bodies_are_400(ecs_alice, body):
    assert_error(await ecs_alice.post("/sshkeys", body), 400)


@pytest.mark.parametrize(
    "path", ["/sshkeys/0", "/sshkeys/999999", "/sshkeys/abc", "/sshkeys/-1", "/sshkeys/99999999999999999999999"]
)
async def test_unknown_keys_are_404(ecs_alice, path):
    assert_error(await ecs_alice.get(path), 404)
    assert_error(await ecs_alice.delete(path), 404)


async def test_groups_are_made_listed_and_deleted(ecs_alice):
    made = await ecs_alice.post("/groups", {"notes": "web tier", "password": "s3cret"})
    assert made.status == 200, made.text
    group = made.json["group"]
    assert group["name"].startswith("eg") and len(group["name"]) == 8 and group["name"][2:].isdigit()
    assert group["notes"] == "web tier" and group["enabled"] is True and isinstance(group["id"], int)
    assert "password" not in made.text and "s3cret" not in made.text
    second = (await ecs_alice.post("/groups", {"notes": None, "password": "p"})).json["group"]
    assert second["notes"] == "" and second["id"] > group["id"]
    assert int(second["name"][2:]) - int(group["name"][2:]) == second["id"] - group["id"]
    listed = (await ecs_alice.get("/groups")).json["groups"]
    assert [g["name"] for g in listed] == [group["name"], second["name"]]
    assert "password" not in str(listed)
    assert (await ecs_alice.get(f"/groups/{group['id']}")).json["group"] == group
    assert (await ecs_alice.delete(f"/groups/{group['id']}")).json == {"status": "ok"}
    assert_error(await ecs_alice.delete(f"/groups/{group['id']}"), 404)
    assert [g["id"] for g in (await ecs_alice.get("/groups")).json["groups"]] == [second["id"]]
    # Numbers (and so names) are never reused.
    third = (await ecs_alice.post("/groups", {"notes": "", "password": "p"})).json["group"]
    assert third["id"] > second["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"notes": "n"},
        {"notes": "n", "password": ""},
        {"notes": 1, "password": "p"},
        {"notes": "n", "password": "p", "enabled": True},
    ],
)
async def test_bad_group_bodies_are_400(ecs_alice, body):
    assert_error(await ecs_alice.post("/groups", body), 400)


async def test_a_group_token_sees_its_group_alone(client, ecs_alice, ecs_user):
    mine = (await ecs_alice.post("/groups", {"notes": "a", "password": "p"})).json["group"]
    other = (await ecs_alice.post("/groups", {"notes": "b", "password": "p"})).json["group"]
    confined = await ecs_user(api=ecs_alice.api, group=mine["name"])
    assert [g["name"] for g in (await confined.get("/groups")).json["groups"]] == [mine["name"]]
    assert_error(await confined.get(f"/groups/{other['id']}"), 404)
    assert_error(await confined.delete(f"/groups/{other['id']}"), 404)
    assert_error(await confined.post("/groups", {"notes": "c", "password": "p"}), 400)
    assert_error(await confined.delete(f"/groups/{mine['id']}"), 400)
    # The user's own keys are the user's, whatever group a token is confined to.
    assert (await confined.post("/sshkeys", {"key": ssh_key(), "label": "k"})).status == 200
    assert [k["label"] for k in (await ecs_alice.get("/sshkeys")).json["pubkeys"]] == ["k"]
    # Deleting a group ends the tokens confined to it.
    assert (await ecs_alice.delete(f"/groups/{mine['id']}")).status == 200
    assert_error(await confined.get("/groups"), 401)


async def test_a_group_token_needs_a_group_of_the_user(client, ecs_alice, ecs_bob, ecs_user):
    from elastic_api.errors import NotFound

    bobs = (await ecs_bob.post("/groups", {"notes": "b", "password": "p"})).json["group"]
    with pytest.raises(NotFound):
        await ecs_user(api=ecs_alice.api, group=bobs["name"])
    with pytest.raises(NotFound):
        await ecs_user(api=ecs_alice.api, group="eg999999")


async def test_group_passwords_are_stored_salted(client, ecs_alice):
    from elastic_api.app import SERVICES
    from elastic_api.service.groups import check_password

    await ecs_alice.post("/groups", {"notes": "", "password": "same"})
    await ecs_alice.post("/groups", {"notes": "", "password": "same"})
    first, second = await client.app[SERVICES].groups.list(ecs_alice.user)
    assert first.password_hash != second.password_hash
    assert check_password("same", first.password_hash) and not check_password("other", first.password_hash)
