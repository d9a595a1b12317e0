"""Guest customization on ECS create (issue 18): the SSH key of a label, the password (hashed at
the request, never in clear on disk, in logs or in answers) and an inline script reach the
server's cloud-init seed; every server gets one; it survives power off/on and goes with the
server; bad input is refused before anything is made. In-process on the libvirt test driver
(the real domain on qemu:///system is in test_cloudinit_libvirt.py)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_api.app import SERVICES
from elastic_api.errors import FailedError
from elastic_api.model.cloudinit import BEGIN_MARKER
from tests.api.ecs.conftest import Ecs, assert_error, ssh_key
from tests.api.ecs.test_servers import create, finished
from tests.api.ecs.test_servers import image as image  # noqa: F401  (the fixture: a tiny standard image)

pytestmark = [
    pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso (scripts/setup.sh) is not installed"),
    pytest.mark.usefixtures("image"),
]
IMAGE = "tiny-os-1"

PASSWORD = "Correct-Horse-Battery-Staple-7"
SCRIPT = "#!/bin/sh\necho customized > /root/customized\n"


def seed_dir(client: Any) -> Path:
    return Path(client.app[SERVICES].servers.config.seed_dir)


def read_seed(iso: Path, into: Path) -> dict[str, str]:
    info = subprocess.run(["xorriso", "-indev", str(iso), "-pvd_info"], capture_output=True, text=True, check=True)
    assert "Volume Id    : cidata" in info.stdout, info.stdout
    into.mkdir()
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(into)], capture_output=True, check=True
    )
    return {p.name: p.read_text() for p in into.iterdir()}


async def engine_uuid(ecs: Ecs, name: str) -> str:
    servers = (await ecs.api.get("/servers/info", as_json=True)).json
    return next(s["server"] for s in servers if s["name"] == name)


def openssl_hash(password: str, salt: str) -> str:
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password.encode(), capture_output=True, check=True
    )
    return done.stdout.decode().strip()


async def test_key_password_and_script_reach_the_seed(ecs_alice: Ecs, client: Any, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    key = ssh_key(comment="alice@laptop")
    assert (await ecs_alice.post("/sshkeys", {"key": key, "label": "laptop"})).status == 200
    made = await create(ecs_alice, ssh_key="laptop", password=PASSWORD, user_customize=SCRIPT)
    assert PASSWORD not in str(made)
    assert (await finished(ecs_alice, made["action_id"]))["status"] == "completed"
    name = made["server"]["name"]
    uuid = await engine_uuid(ecs_alice, name)
    iso = seed_dir(client) / f"{uuid}.iso"
    assert iso.stat().st_mode & 0o777 == 0o600
    files = read_seed(iso, tmp_path / "seed")
    assert set(files) == {"meta-data", "user-data"}
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": uuid, "local-hostname": name}
    user_data = files["user-data"]
    assert user_data.startswith("#cloud-config\n") and PASSWORD not in user_data
    data = yaml.safe_load(user_data)
    assert data["ssh_authorized_keys"] == [key]
    [root] = [u for u in data["users"] if isinstance(u, dict)]
    password_hash = root["hashed_passwd"]
    assert password_hash == openssl_hash(PASSWORD, password_hash.split("$")[2])  # the hash verifies
    assert {f["path"].rsplit("/", 1)[1]: f["content"] for f in data["write_files"]}["script"] == SCRIPT
    assert BEGIN_MARKER in {f["path"].rsplit("/", 1)[1]: f["content"] for f in data["write_files"]}["run"]
    assert data["runcmd"] == [["/var/lib/elastic-api/customize/run", uuid]]
    # No guest runs on the test driver: the create ended at the bound, saying so in the log.
    assert f"ECS server {name}: customization script did not report its end within" in caplog.text

    # Kept through power off and on (rebuilt at the start, the same content).
    for kind in ("power_off", "power_on"):
        action = await ecs_alice.post(f"/servers/{name}/actions", {"type": kind})
        assert (await finished(ecs_alice, action.json["id"]))["status"] == "completed"
    assert read_seed(iso, tmp_path / "again")["meta-data"] == files["meta-data"]

    # The clear password is nowhere: not in the database (its WAL too), the logs, the seeds, or
    # any answer. (The drives are the guest's: 20 GiB of sparse image, not read here.)
    config = client.app[SERVICES].servers.config
    scanned = [p for p in config.data_dir.rglob("*") if p.is_file() and config.pool_dir not in p.parents]
    assert any(p.name.startswith("elastic.db") for p in scanned)
    for path in scanned:
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in caplog.text
    for path in ("/servers", f"/servers/{name}", "/actions"):
        assert PASSWORD not in (await ecs_alice.get(path)).text

    # Removed with the server.
    deleted = await ecs_alice.delete(f"/servers/{name}")
    assert (await finished(ecs_alice, deleted.json["action"]["id"]))["status"] == "completed"
    assert not iso.exists()
    assert list(seed_dir(client).iterdir()) == []


async def test_every_server_gets_a_seed(ecs_alice: Ecs, client: Any, tmp_path: Path) -> None:
    made = await create(ecs_alice)
    assert (await finished(ecs_alice, made["action_id"]))["status"] == "completed"
    name = made["server"]["name"]
    uuid = await engine_uuid(ecs_alice, name)
    files = read_seed(seed_dir(client) / f"{uuid}.iso", tmp_path / "seed")
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": uuid, "local-hostname": name}
    data = yaml.safe_load(files["user-data"])
    assert data["hostname"] == name and not {"ssh_authorized_keys", "users", "runcmd"} & set(data)
    # A seed whose server is gone (its removal cut short by a crash) goes at the start-up sweep.
    orphan = seed_dir(client) / "0ff00000-0000-4000-8000-000000000000.iso"
    orphan.write_bytes(b"left behind")
    await client.app[SERVICES].servers.sweep_seeds()
    assert not orphan.exists() and (seed_dir(client) / f"{uuid}.iso").exists()


async def test_bad_guest_input_is_refused_and_nothing_is_made(ecs_alice: Ecs, ecs_bob: Ecs, client: Any) -> None:
    assert (await ecs_bob.post("/sshkeys", {"key": ssh_key(), "label": "bobs"})).status == 200
    limit = client.app[SERVICES].servers.config.max_inline_script_bytes
    most = client.app[SERVICES].servers.config.max_guest_password
    for change, words in (
        ({"ssh_key": "nokey"}, "unknown ssh_key"),
        ({"ssh_key": "bobs"}, "unknown ssh_key"),  # another user's label is as unknown
        ({"user_customize": "x" * (limit + 1)}, "user_customize"),
        ({"user_customize": "é" * (limit // 2 + 1)}, "user_customize"),  # counted in UTF-8 bytes
        ({"user_customize": ""}, "user_customize"),
        ({"user_customize": "a\u0000b"}, "user_customize"),
        ({"user_customize": 7}, "unknown user_customize"),  # no such library script
        ({"user_customize": True}, "user_customize must be"),
        ({"user_customize": "echo hi", "user_customize_env": "A=b"}, "user_customize_env"),  # env needs an id
        ({"password": "Secret\u0001Control"}, "password"),
        ({"password": "Secret\nNewline"}, "password"),
        ({"password": "p" * (most + 1)}, "password"),
        ({"password": ""}, "password"),
        ({"password": 12345678}, "password"),
    ):
        body = assert_error(
            await ecs_alice.post("/servers", {"plan": "ECS1", "image": IMAGE, "location": "local", **change}), 400
        )
        assert words in body["message"], (change, body)
        for secret in ("Secret\u0001Control", "Secret\nNewline"):
            assert secret not in body["message"]
    assert (await ecs_alice.get("/servers")).json["count"] == 0
    assert (await ecs_alice.get("/actions")).json["total_actions"] == 0
    assert not seed_dir(client).exists() or list(seed_dir(client).iterdir()) == []
    # At the limits: accepted.
    made = await create(ecs_alice, user_customize="x" * limit, password="p" * most)
    assert (await finished(ecs_alice, made["action_id"]))["status"] == "completed"


async def test_a_failed_create_removes_its_seed_and_keeps_the_password_out(
    ecs_alice: Ecs, client: Any, monkeypatch: Any
) -> None:
    """The host refuses the domain after the seed was built: the action fails without the
    password in its error, the server is `Fail`, and its seed went with its engine server."""
    servers = client.app[SERVICES].servers
    built: list[Path] = []
    write = servers.seeds.write

    async def recorded(*args: Any) -> Path:
        built.append(await write(*args))
        return built[-1]

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise FailedError("the host refused the domain")

    monkeypatch.setattr(servers.seeds, "write", recorded)
    monkeypatch.setattr(servers.hypervisor, "start", refuse)
    made = await create(ecs_alice, password=PASSWORD, user_customize=SCRIPT)
    action = await finished(ecs_alice, made["action_id"])
    assert action["status"] == "failed" and PASSWORD not in str(action)
    assert (await ecs_alice.get(f"/servers/{made['server']['name']}")).json["server"]["status"] == "Fail"
    assert built and not built[0].exists()
    assert list(seed_dir(client).iterdir()) == []


async def test_a_library_script_and_its_environment_reach_the_seed(
    ecs_alice: Ecs, ecs_bob: Ecs, client: Any, tmp_path: Path
) -> None:
    script = (await ecs_alice.post("/scripts", {"title": "web", "content": SCRIPT, "windows": False})).json["script"]
    theirs = (await ecs_bob.post("/scripts", {"title": "b", "content": SCRIPT, "windows": False})).json["script"]
    for body, field in (
        ({"user_customize": theirs["id"]}, "user_customize"),  # another user's: as unknown
        ({"user_customize": 999_999}, "user_customize"),
        ({"user_customize": script["id"], "user_customize_env": "1BAD=x"}, "env"),
        ({"user_customize": SCRIPT, "user_customize_env": "A=b"}, "user_customize_env"),  # env needs an id
        ({"user_customize": True}, "user_customize"),
    ):
        answer = await ecs_alice.post("/servers", {"plan": "ECS1", "image": IMAGE, "location": "local"} | body)
        assert_error(answer, 400)
        assert field in answer.json["message"].lower(), answer.json
    assert (await ecs_alice.get("/servers")).json["server"] == []
    made = await create(ecs_alice, user_customize=script["id"], user_customize_env="SITE=example\nMODE=prod")
    assert (await finished(ecs_alice, made["action_id"]))["status"] == "completed"
    uuid = await engine_uuid(ecs_alice, made["server"]["name"])
    data = yaml.safe_load(read_seed(seed_dir(client) / f"{uuid}.iso", tmp_path / "seed")["user-data"])
    files = {f["path"].rsplit("/", 1)[1]: f["content"] for f in data["write_files"]}
    assert files["script"] == SCRIPT
    assert "SITE" in str(files) and "example" in str(files) and "MODE" in str(files)
