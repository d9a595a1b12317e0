"""The audit trail of the real program (`elastic-api serve` as a subprocess): an ElasticHosts call
with the user's secret and ECS calls with a token made by `elastic-api user token create` show
in `/ecs/v2/logs`; what is queued at SIGTERM is written before the program exits; no secret is
in any row."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.api.ecs.conftest import ssh_key
from tests.support import Server, create_user, request, run_cli, write_config


def ecs(server: Server, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.url + "/ecs/v2" + path,
        data=data,
        method=method,
        headers={"X-APITOKEN": token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_programs_audit_trail(tmp_path: Path):
    # A long flush delay: entries still queued at SIGTERM must be written on the way out.
    config = write_config(tmp_path, audit_flush_seconds=30)
    user, secret = create_user(config)
    made = run_cli(config, "user", "token", "create", user)
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[1]
    server = Server(config).start()
    try:
        status, _, body = request(server.url + "/drives/create", user, secret, b"name d\nsize 1M\n")
        assert status == 200, body
        drive = dict(line.split(" ", 1) for line in body.decode().splitlines())["drive"]
        key = ssh_key(payload=b"program-key-material" * 2)
        assert ecs(server, token, "POST", "/sshkeys", {"key": key, "label": "mine"})[0] == 200
        assert ecs(server, token, "POST", "/groups", {"notes": "n", "password": "group-secret-pw"})[0] == 200
        assert ecs(server, token, "GET", "/sshkeys")[0] == 200
        assert request(server.url + "/drives/list", user, secret)[0] == 200

        status, logs = ecs(server, token, "GET", "/logs")
        assert status == 200 and logs["total_logs"] == 3
        assert [(e["dialect"], e["actor_type"], e["action"], e["status"]) for e in logs["logs"]] == [
            ("ecs", "api_token", "POST /groups", "ok"),
            ("ecs", "api_token", "POST /sshkeys", "ok"),
            ("elastichosts", "basic", "POST /drives/create", "ok"),
        ]
        assert logs["logs"][2]["target"] == drive and {e["actor"] for e in logs["logs"]} == {user}

        # Queued, not yet read: written at shutdown.
        assert ecs(server, token, "DELETE", "/groups/424242")[0] == 404
    finally:
        assert server.stop() == 0
    with sqlite3.connect(tmp_path / "var" / "elastic.db") as db:
        rows = db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    assert len(rows) == 4 and rows[-1][6] == "/groups/{id}" and rows[-1][-1] == 404
    text = repr(rows)
    for leaked in (secret, token, key, key.split()[1], "group-secret-pw"):
        assert leaked not in text
