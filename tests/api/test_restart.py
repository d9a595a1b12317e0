"""The real program: `user create`, `serve`, a restart on the same data directory."""

from __future__ import annotations

import signal

from tests.support import Server, as_json, create_user, request, run_cli, write_config


def test_objects_survive_a_restart(tmp_path):
    config = write_config(tmp_path)
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        status, _, body = request(server.url + "/drives/create", user, secret, b"name keep\nsize 5G\n")
        assert status == 200
        status, _, body = request(
            server.url + "/drives/create",
            user,
            secret,
            b'{"name": "json", "size": "1M", "tags": ["x"]}',
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        kept = as_json(body)
    finally:
        assert server.stop() == 0  # SIGTERM is a clean stop

    server.start()
    try:
        status, headers, body = request(
            server.url + "/drives/info", user, secret, method="GET", headers={"Accept": "application/json"}
        )
        assert status == 200 and headers["X-Elastic-Output"] == "properties list"
        drives = as_json(body)
        assert [d["name"] for d in drives] == ["keep", "json"] and drives[1] == kept
        assert drives[0]["size"] == 5 << 30
        status, _, _ = request(server.url + "/drives/list", user, "wrong", method="GET")
        assert status == 401
    finally:
        server.stop(signal.SIGINT)


def test_cli_contract(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    result = run_cli(config, "user", "create")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["user", "secret"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: 127.0.0.1:8080\ncolour: red\n")
    result = run_cli(bad, "user", "create")
    assert result.returncode == 2 and "colour" in result.stderr and result.stdout == ""
    result = run_cli(tmp_path / "missing.yaml", "serve")
    assert result.returncode == 2 and "cannot read config" in result.stderr


def test_access_log_has_one_line_a_request_and_no_secrets(tmp_path):
    config = write_config(tmp_path)
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        status, _, _ = request(server.url + "/drives/create?x=1", user, secret, b"name logged\nsize 1M\n")
        assert status == 200
        status, _, _ = request(server.url + "/drives/info?wrong", user, "not-the-secret", method="GET")
        assert status == 401
    finally:
        assert server.stop() == 0
    lines = [line for line in server.log.read_text().splitlines() if "aiohttp.access" in line]
    created = [line for line in lines if '"POST /drives/create?x=1" 200 ' in line]
    refused = [line for line in lines if '"GET /drives/info?wrong" 401 ' in line]
    assert len(created) == 1 and len(refused) == 1, lines
    assert created[0].split()[-1].endswith("s") and "127.0.0.1" in created[0]
    log = server.log.read_text()
    assert secret not in log and "not-the-secret" not in log and "Basic" not in log
