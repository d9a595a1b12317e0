"""An ElasticHosts server asks for a cloud-init seed with the `cloudinit` extension keys: the seed
is built at its start (libvirt test driver), shown back in info, changed by `set`, and removed
with the server; bad keys are a 400 `usage` naming the key, and nothing is made."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_api.app import SERVICES
from elastic_api.model.cloudinit import sha512_crypt
from tests.api.ecs.conftest import ssh_key
from tests.conftest import Api

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso (scripts/setup.sh) is not installed")

KEY = ssh_key(comment="me@laptop")
HASH = sha512_crypt("pw", "saltsalt")
SCRIPT = "#!/bin/sh\necho hi\n"


def user_data(iso: Path, into: Path) -> dict[str, Any]:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(into)], capture_output=True, check=True
    )
    return {
        "meta": yaml.safe_load((into / "meta-data").read_text()),
        "user": yaml.safe_load((into / "user-data").read_text()),
    }


async def test_a_server_with_a_seed(alice: Api, client: Any, tmp_path: Path) -> None:
    seeds = Path(client.app[SERVICES].servers.config.seed_dir)
    body = {
        "name": "My Web Server",
        "cpu": "1000",
        "mem": "256",
        "persistent": "true",
        "cloudinit:ssh_key": KEY,
        "cloudinit:password_hash": HASH,
        "cloudinit:script": base64.b64encode(SCRIPT.encode()).decode(),
    }
    reply = await alice.call("/servers/create", body, as_json=True)
    assert reply.status == 200, reply.text
    server = reply.json
    uuid = server["server"]
    assert (server["cloudinit"], server["cloudinit:ssh_key"], server["cloudinit:password_hash"]) == ("on", KEY, HASH)
    seed = seeds / f"{uuid}.iso"
    found = user_data(seed, tmp_path / "first")
    assert found["meta"] == {"instance-id": uuid, "local-hostname": "my-web-server"}
    assert found["user"]["ssh_authorized_keys"] == [KEY] and found["user"]["runcmd"][0][1] == uuid

    # A set while it runs is taken; the seed is rebuilt at the next start.
    changed = await alice.call(f"/servers/{uuid}/set", {"cloudinit:script": ""}, as_json=True)
    assert changed.status == 200 and "cloudinit:script" not in changed.json, changed.text
    assert (await alice.call(f"/servers/{uuid}/stop")).status == 204
    assert (await alice.call(f"/servers/{uuid}/start")).status == 204
    assert "runcmd" not in user_data(seed, tmp_path / "second")["user"]
    # Off: the next start has no seed.
    assert (await alice.call(f"/servers/{uuid}/stop")).status == 204
    assert (await alice.call(f"/servers/{uuid}/set", {"cloudinit": "off"})).status == 200
    info = (await alice.get(f"/servers/{uuid}/info", as_json=True)).json
    assert not [k for k in info if k.startswith("cloudinit")]
    await alice.call(f"/servers/{uuid}/set", {"cloudinit": "on"})
    assert (await alice.call(f"/servers/{uuid}/start")).status == 204
    assert seed.exists()
    assert (await alice.call(f"/servers/{uuid}/destroy")).status == 204
    assert not seed.exists()


async def test_bad_cloudinit_keys_are_refused_and_nothing_is_made(alice: Api, client: Any) -> None:
    limit = client.app[SERVICES].servers.config.max_inline_script_bytes
    base = {"name": "x", "cpu": "1000", "mem": "256"}
    for key, value in (
        ("cloudinit", "yes"),
        ("cloudinit:ssh_key", "ssh-ed25519 AAAA"),
        ("cloudinit:password_hash", "secret"),
        ("cloudinit:script", "%%%"),
        ("cloudinit:script", base64.b64encode(b"x" * (limit + 1)).decode()),
    ):
        reply = await alice.call("/servers/create", {**base, key: value})
        assert (reply.status, reply.error) == (400, "usage"), (key, reply.text)
        assert key in reply.text, reply.text
    assert (await alice.get("/servers/list")).text == ""
    seeds = Path(client.app[SERVICES].servers.config.seed_dir)
    assert not seeds.exists() or list(seeds.iterdir()) == []
    made = await alice.call("/servers/create/stopped", base, as_json=True)
    uuid = made.json["server"]
    too_big = base64.b64encode(b"x" * (limit + 1)).decode()
    reply = await alice.call(f"/servers/{uuid}/set", {"cloudinit:script": too_big})
    assert (reply.status, reply.error) == (400, "usage") and "cloudinit:script" in reply.text
    assert "cloudinit" not in (await alice.get(f"/servers/{uuid}/info", as_json=True)).json
