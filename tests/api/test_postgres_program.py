"""The real program on PostgreSQL: `elastic-api user create` and `serve` with `database_url` set
to the test cluster (scripts/test.sh), and the ElasticHosts basics end to end."""

from __future__ import annotations

import gzip
import os

import psycopg

from tests.postgres import fresh_database_sync
from tests.support import Server, as_json, create_user, request, run_cli, write_config

JSON = {"Accept": "application/json"}


def test_serve_on_postgresql_creates_lists_uploads_downloads_and_destroys(tmp_path):
    with fresh_database_sync() as url:
        config = write_config(tmp_path, database_url=url)
        user, secret = create_user(config)
        server = Server(config).start()
        try:

            def call(path: str, body: bytes | None = None, **kw: object) -> tuple[int, dict[str, str], bytes]:
                return request(server.url + path, user, secret, body, **kw)  # type: ignore[arg-type]

            status, _, body = call("/drives/create", b"name pg\nsize 4M\n", headers=JSON)
            assert status == 200, body
            drive = as_json(body)["drive"]
            status, _, body = call(f"/drives/{drive}/info", method="GET", headers=JSON)
            assert status == 200 and as_json(body)["name"] == "pg" and as_json(body)["size"] == 4 << 20
            status, _, body = call("/drives/list", method="GET")
            assert status == 200 and body.decode().split() == [drive]

            data = os.urandom(64 * 1024) + b"elastic on postgresql" * 1000
            status, _, body = call(
                f"/drives/{drive}/write/4096", gzip.compress(data, 1), headers={"Content-Encoding": "gzip"}
            )
            assert status == 204 or status == 200, body
            status, _, body = call(f"/drives/{drive}/read/4096/{len(data)}", method="GET")
            assert status == 200 and body == data
            status, _, body = call(f"/drives/{drive}/info", method="GET", headers=JSON)
            assert as_json(body)["write:bytes"] >= len(data)

            # The rows are PostgreSQL's, not a SQLite file's.
            assert not (tmp_path / "var" / "elastic.db").exists()
            with psycopg.connect(url) as db:
                assert db.execute("SELECT owner, name FROM drives").fetchall() == [(user, "pg")]

            status, _, _ = call(f"/drives/{drive}/destroy")
            assert status in (200, 204)
            status, _, body = call("/drives/list", method="GET")
            assert status == 200 and body.decode().split() == []
            status, _, _ = request(server.url + "/drives/list", user, "wrong", method="GET")
            assert status == 401
        finally:
            assert server.stop() == 0
        quota = run_cli(config, "user", "set-quota", user, "drives=3")
        assert quota.returncode == 0, quota.stderr
        assert any(line.split()[:2] == ["drives", "3"] for line in quota.stdout.splitlines()), quota.stdout
