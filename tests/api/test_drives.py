"""/drives metadata over HTTP: both formats, both methods, ownership, readers, pages, errors."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from elastic_api.model.ids import ALL_USERS

RANDOM = str(uuid.uuid4())


async def test_create_info_list_set_destroy_text(alice, config):
    created = await alice.create_drive("10G", "my boot drive", tags="os linux")
    drive = created["drive"]
    assert created["name"] == "my boot drive" and created["size"] == str(10 << 30)
    assert created["user"] == alice.user and created["encryption:cipher"] == "none"
    assert created["status"] == "active" and created["claim:type"] == "exclusive"

    volume = config.pool_dir / f"{drive}.raw"
    assert volume.stat().st_size == 10 << 30 and volume.stat().st_blocks == 0  # real, empty, sparse

    listed = await alice.get("/drives/list")
    assert listed.status == 200 and listed.text == f"{drive}\n"
    assert listed.headers["X-Elastic-Output"] == "list"

    info = await alice.get(f"/drives/{drive}/info")
    assert info.props()["tags"] == "os linux" and info.headers["X-Elastic-Output"] == "properties"

    changed = await alice.call(f"/drives/{drive}/set", "name renamed\nuser:note a\\nb\n")
    assert changed.status == 200 and changed.props()["name"] == "renamed"
    assert changed.props()["user:note"] == "a\\nb"

    gone = await alice.call(f"/drives/{drive}/destroy")
    assert gone.status == 204 and gone.body == b""
    assert not volume.exists()
    assert (await alice.get(f"/drives/{drive}/info")).status == 404
    assert (await alice.get("/drives/list")).text == ""


async def test_json_in_and_out(alice):
    created = await alice.call("/drives/create", {"name": "j", "size": "1G", "tags": ["a", "b"]}, as_json=True)
    assert created.status == 200 and created.headers["Content-Type"].startswith("application/json")
    drive = created.json
    assert drive["size"] == 1 << 30 and drive["tags"] == ["a", "b"] and drive["claimed"] == []
    assert isinstance(drive["read:bytes"], int)

    listed = await alice.get("/drives/list", as_json=True)
    assert listed.json == [{"drive": drive["drive"]}] and listed.headers["X-Elastic-Output"] == "list"
    every = await alice.get("/drives/info", as_json=True)
    assert every.json == [drive] and every.headers["X-Elastic-Output"] == "properties list"

    changed = await alice.call(f"/drives/{drive['drive']}/set", {"size": 2 << 30}, as_json=True)
    assert changed.json["size"] == 2 << 30


async def test_info_collection_text_blocks(alice):
    first = await alice.create_drive(name="one")
    second = await alice.create_drive(name="two")
    blocks = (await alice.get("/drives/info")).text.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"drive {first['drive']}", f"drive {second['drive']}"]


async def test_reads_accept_post_and_changes_refuse_get(alice):
    drive = (await alice.create_drive())["drive"]
    for path in ("/drives/list", "/drives/info", f"/drives/{drive}/info", f"/drives/{drive}/info/full"):
        assert (await alice.get(path)).status == 200
        assert (await alice.call(path)).status == 200
    for path in ("/drives/create", f"/drives/{drive}/set", f"/drives/{drive}/destroy"):
        reply = await alice.get(path)
        assert (reply.status, reply.error) == (405, "method")
    assert (await alice.call("/drives/list", method="PUT")).status == 405
    assert (await alice.get(f"/drives/{drive}/info")).status == 200  # nothing was destroyed


async def test_empty_json_body_and_octet_stream_text(alice):
    drive = (await alice.create_drive())["drive"]
    reply = await alice.call(f"/drives/{drive}/set", b"", headers={"Content-Type": "application/json"})
    assert reply.status == 200
    reply = await alice.call("/drives/list", b"", headers={"Content-Type": "application/json"})
    assert reply.status == 200
    reply = await alice.call(
        "/drives/create", b"name octet\nsize 1k\n", headers={"Content-Type": "application/octet-stream"}
    )
    assert reply.status == 200 and reply.props()["name"] == "octet"
    reply = await alice.call(
        "/drives/create", b"name form\nsize 1k\n", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 200 and reply.props()["size"] == "1024"


@pytest.mark.parametrize(
    "body, word",
    [
        ("name x\nsize 1G\ncolour red\n", "colour"),
        ("name x\nsize lots\n", "size"),
        ("size 1G\n", "name"),
        ("name x\nsize 1G\nformat vmdk\n", "format"),
        ("name x\nsize 1G\nencryption:cipher aes-cbc-essiv\n", "encryption:cipher"),
        ('{"name": ', "JSON"),
    ],
)
async def test_bad_create_is_400_and_creates_nothing(alice, config, body, word):
    headers = {"Content-Type": "application/json"} if body.startswith("{") else {}
    reply = await alice.call("/drives/create", body, headers=headers)
    assert reply.status == 400 and reply.error == "usage" and word in reply.text
    assert reply.text.count("\n") == 1 and "Traceback" not in reply.text
    assert (await alice.get("/drives/list")).text == ""
    assert not any(config.pool_dir.iterdir())


async def test_set_refusals(alice):
    drive = (await alice.create_drive("2M"))["drive"]
    for body, word in (
        ("size 1M\n", "shrink"),
        ("format qcow2\n", "cannot be changed"),
        ("user x\n", "read-only"),
        ("nope 1\n", "nope"),
    ):
        reply = await alice.call(f"/drives/{drive}/set", body)
        assert (reply.status, reply.error) == (400, "usage") and word in reply.text
    assert (await alice.get(f"/drives/{drive}/info")).props()["size"] == str(2 << 20)


async def test_qcow2_drive_is_a_real_qcow2_file(alice, config):
    drive = (await alice.create_drive("64M", format="qcow2"))["drive"]
    path = config.pool_dir / f"{drive}.qcow2"
    assert path.read_bytes()[:4] == b"QFI\xfb"


async def test_metadata_body_limit(alice):
    reply = await alice.call("/drives/create", "name x\nsize 1\nuser:big " + "x" * (80 << 10) + "\n")
    assert (reply.status, reply.error) == (413, "usage")


async def test_unknown_paths_are_404_missing(alice):
    for path in ("/nothing", "/drives", "/drives/list/extra/bits", f"/drives/{RANDOM}/explode"):
        reply = await alice.call(path)
        assert (reply.status, reply.error) == (404, "missing")


async def test_malformed_and_unknown_uuids_are_404(alice):
    for drive in (RANDOM, "not-a-uuid", "..%2F..%2Fetc", "x" * 300):
        for path in (f"/drives/{drive}/info", f"/drives/{drive}/set", f"/drives/{drive}/destroy"):
            reply = await alice.call(path)
            assert (reply.status, reply.error) == (404, "missing"), path


async def test_uppercase_uuid_finds_the_drive(alice):
    drive = (await alice.create_drive())["drive"]
    assert (await alice.get(f"/drives/{drive.upper()}/info")).status == 200


async def test_changes_to_one_drive_take_turns(alice):
    """set and destroy read the drive under its lock, keyed by the canonical ID however the
    request spells it: of two destroys one finds the drive gone, and a set never revives it."""
    drive = (await alice.create_drive())["drive"]
    set_, upper, lower = await asyncio.gather(
        alice.call(f"/drives/{drive}/set", "name late\n"),
        alice.call(f"/drives/{drive.upper()}/destroy"),
        alice.call(f"/drives/{drive}/destroy"),
    )
    assert sorted((upper.status, lower.status)) == [204, 404]
    assert set_.status in (200, 404)
    assert (await alice.get(f"/drives/{drive}/info")).status == 404
    assert (await alice.get("/drives/list")).text == ""


async def test_other_users_drives_answer_like_missing_ones(alice, bob, config):
    drive = (await alice.create_drive(name="secret", tags="t"))["drive"]
    before = (await alice.get(f"/drives/{drive}/info")).body
    for path, body in (
        (f"/drives/{drive}/info", None),
        (f"/drives/{drive}/info/full", None),
        (f"/drives/{drive}/set", "name stolen\n"),
        (f"/drives/{drive}/destroy", None),
    ):
        theirs = await bob.call(path, body)
        missing = await bob.call(path.replace(drive, RANDOM), body)
        assert (theirs.status, theirs.error) == (404, "missing")
        assert theirs.text.replace(drive, RANDOM) == missing.text
    assert (await bob.get("/drives/list")).text == ""
    assert (await bob.get("/drives/info")).text == ""
    assert (await alice.get(f"/drives/{drive}/info")).body == before
    assert (config.pool_dir / f"{drive}.raw").exists()


async def test_readers_see_but_never_change(alice, bob, make_user):
    carol = await make_user("carol")
    drive = (await alice.create_drive(readers=bob.user))["drive"]
    assert (await bob.get("/drives/list")).text == f"{drive}\n"
    assert (await bob.get(f"/drives/{drive}/info")).props()["user"] == alice.user
    assert (await carol.get(f"/drives/{drive}/info")).status == 404
    for path in (f"/drives/{drive}/set", f"/drives/{drive}/destroy"):
        assert (await bob.call(path, "name mine\n")).status == 404
    assert (await alice.get(f"/drives/{drive}/info")).props()["name"] == "d"

    assert (await alice.call(f"/drives/{drive}/set", f"readers {ALL_USERS}\n")).status == 200
    assert (await carol.get(f"/drives/{drive}/info")).status == 200
    assert (await alice.call(f"/drives/{drive}/set", "readers\n")).status == 200
    assert (await bob.get(f"/drives/{drive}/info")).status == 404


async def test_pages(alice):
    drives = [(await alice.create_drive(name=f"d{i}"))["drive"] for i in range(5)]
    first = (await alice.get("/drives/list?limit=2")).text.split()
    assert first == drives[:2]
    second = (await alice.get(f"/drives/list?limit=2&marker={first[-1]}")).text.split()
    assert second == drives[2:4]
    last = (await alice.get(f"/drives/info?limit=2&marker={second[-1]}", as_json=True)).json
    assert [d["drive"] for d in last] == drives[4:]
    assert (await alice.get(f"/drives/list?marker={drives[-1]}")).text == ""
    for query in ("limit=0", "limit=1001", "limit=x", f"marker={RANDOM}", "marker=zzz"):
        reply = await alice.get(f"/drives/list?{query}")
        assert (reply.status, reply.error) == (400, "usage"), query


async def test_marker_of_another_users_drive_is_unknown(alice, bob):
    theirs = (await bob.create_drive())["drive"]
    reply = await alice.get(f"/drives/list?limit=1&marker={theirs}")
    assert (reply.status, reply.error) == (400, "usage")


BAD_AUTH = [
    None,
    "",
    "Basic",
    "Basic ",
    "Bearer abc",
    "Basic !!!notbase64",
    "Basic " + "QQ==" * 3,
    "Basic dXNlcg==",  # "user", no colon
    "Basic Og==",  # ":"
    "Basic w7w6w7w=",  # non-ASCII user
    "Basic ñ",
    "Basic " + "A" * 5000,
]


@pytest.mark.parametrize("header", BAD_AUTH)
async def test_bad_auth_is_401_never_5xx(alice, header):
    headers = {} if header is None else {"Authorization": header}
    reply = await alice.call("/drives/list", headers=headers, auth=False)
    assert (reply.status, reply.error) == (401, "auth")
    assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")


async def test_a_header_too_long_for_the_parser_is_a_client_error(alice):
    reply = await alice.call("/drives/list", headers={"Authorization": "Basic " + "A" * 20000}, auth=False)
    assert reply.status in (400, 401, 431)


async def test_wrong_secret_and_unknown_user(alice, bob):
    import base64

    for user, secret in (
        (alice.user, bob.secret),
        (RANDOM, alice.secret),
        (alice.user, ""),
        (alice.user.upper(), alice.secret + "x"),
    ):
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        reply = await alice.call("/drives/list", headers={"Authorization": f"Basic {token}"}, auth=False)
        assert reply.status == 401


async def test_orphan_volumes_are_swept_at_start(config, serve, app):
    config.pool_dir.mkdir(parents=True, exist_ok=True)
    orphan = config.pool_dir / f"{RANDOM}.raw"
    orphan.write_bytes(b"x")
    await serve(app)
    assert not orphan.exists()
