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
        status, _, body = request(server.url + "/drives/create", user, secret,
                                  b'{"name": "json", "size": "1M", "tags": ["x"]}',
                                  headers={"Content-Type": "application/json", "Accept": "application/json"})
        kept = as_json(body)
    finally:
        assert server.stop() == 0  # SIGTERM is a clean stop

    server.start()
    try:
        status, headers, body = request(server.url + "/drives/info", user, secret, method="GET",
                                        headers={"Accept": "application/json"})
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
