"""The same Debian guest with cloud-init (tests/guest/image.py) as a standard image, made an ECS
server through the API with ssh_key, password and an inline user_customize: the seed is the
program's own (model/cloudinit.py, storage/seed.py), and the guest's serial log shows the key,
root's password hash (never the clear password) and the script's effect, while the server's status
goes Customizing then Booted. TCG (domain_type qemu): see test_config_drive's docstring."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.api.ecs.conftest import ssh_key
from tests.api.ecs.test_ecsapi import cli_token
from tests.guest.image import guest_image
from tests.support import (
    GUEST_DEADLINE,
    Server,
    create_user,
    free_port,
    network_exists,
    remove_guests_under,
    remove_network_if_unused,
    run_cli,
    write_config,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(int(4 * GUEST_DEADLINE) + 1900)]
IMAGE = "b00710ad-0000-4000-8000-00000000c1d0"
PASSWORD = "Clear-Pass-4-ecs-guest"
SCRIPT = "#!/bin/sh\necho customized-by-ecs > /var/tmp/effect\necho EFFECT $(cat /var/tmp/effect) > /dev/ttyS0\n"
SCRIPT += (
    "echo KEYS $(cat /root/.ssh/authorized_keys) > /dev/ttyS0\necho SHADOW $(grep ^root: /etc/shadow) > /dev/ttyS0\n"
)


def ecs(url: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"X-APITOKEN": token, **({"Content-Type": "application/json"} if data else {})}
    sent = urllib.request.Request(url + "/ecs/v2" + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_ecs_server_arrives_configured(system_libvirt, tmp_path: Path):
    image = guest_image()
    port = free_port()
    public = f"ecs-g-{port}"
    subnet = f"10.{200 + port % 50}.{port % 250}"
    had_public = network_exists(system_libvirt, public)
    config = write_config(
        tmp_path,
        hosts=[{"name": "local", "uri": system_libvirt}],
        domain_type="qemu",
        plans=[{"name": "GUEST", "cpu": 2, "ram": 768, "disk": 1}],
        public_network=public,
        ip_pool={
            "network": f"{subnet}.0/24",
            "gateway": f"{subnet}.1",
            "nameserver": f"{subnet}.1",
            "range": f"{subnet}.10-{subnet}.254",
        },
    )
    user, _ = create_user(config)
    added = run_cli(config, "image", "add", "--uuid", IMAGE, "--name", "Debian Cloud Init", str(image))
    assert added.returncode == 0, added.stderr
    token = cli_token(config, user)
    server = Server(config).start()
    try:
        key = ssh_key(comment="alice@ecs-guest")
        status, body = ecs(server.url, token, "POST", "/sshkeys", {"label": "alice", "key": key})
        assert status in (200, 201), body
        status, body = ecs(
            server.url,
            token,
            "POST",
            "/servers",
            {
                "plan": "GUEST",
                "image": "debian-cloud-init",
                "location": "local",
                "ssh_key": "alice",
                "password": PASSWORD,
                "user_customize": SCRIPT,
            },
        )
        assert status in (200, 201, 202), body
        name = body["server"]["name"]
        seen: list[str] = []
        deadline = time.monotonic() + 3 * GUEST_DEADLINE
        while not seen or seen[-1] != "Booted":
            assert time.monotonic() < deadline, f"statuses seen {seen}"
            _, got = ecs(server.url, token, "GET", f"/servers/{name}")
            state = got["server"]["status"]
            assert state != "Fail", got
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.2)
        assert "Customizing" in seen, seen
        logs = list((tmp_path / "var" / "logs").glob("*.serial.log"))
        assert len(logs) == 1
        lines = [line.strip() for line in logs[0].read_bytes().decode(errors="replace").splitlines()]
        assert "EFFECT customized-by-ecs" in lines
        assert f"KEYS {key}" in lines
        shadow = next(line for line in lines if line.startswith("SHADOW root:"))
        assert shadow.split(":")[1].startswith("$6$")
        assert any(line.startswith("ELASTIC-API CUSTOMIZE END ") and line.endswith(" rc=0") for line in lines)
        assert PASSWORD not in "\n".join(lines)
        for seed in (tmp_path / "var").rglob("*.iso"):
            assert PASSWORD.encode() not in seed.read_bytes()
        status, _ = ecs(server.url, token, "DELETE", f"/servers/{name}")
        assert status in (200, 202)

        # A script that fails: Booted all the same, the exit code in the program's log, no password.
        status, body = ecs(
            server.url,
            token,
            "POST",
            "/servers",
            {
                "plan": "GUEST",
                "image": "debian-cloud-init",
                "location": "local",
                "password": PASSWORD,
                "user_customize": "#!/bin/sh\nexit 3\n",
            },
        )
        assert status in (200, 201, 202), body
        failed = body["server"]["name"]
        warning = f"ECS server {failed}: customization script failed with exit code 3"
        while warning not in server.log.read_text(errors="replace"):
            assert time.monotonic() < deadline + 2 * GUEST_DEADLINE, server.log.read_text()[-2000:]
            time.sleep(0.5)
        states: list[str] = []  # the warning is logged just before the row says Booted
        while not states or states[-1] != "Booted":
            assert time.monotonic() < deadline + 2 * GUEST_DEADLINE, states
            states.append(ecs(server.url, token, "GET", f"/servers/{failed}")[1]["server"]["status"])
            time.sleep(0.1)
        assert set(states) <= {"Customizing", "Booted"}, states
        assert PASSWORD not in server.log.read_text(errors="replace")
    finally:
        server.stop()
        remove_guests_under(system_libvirt, tmp_path)
        if not had_public:
            remove_network_if_unused(system_libvirt, public)
