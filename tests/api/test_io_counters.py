"""The drives' I/O counters through the real program: counted in memory, shown at once, stored
in batches, and stored at a clean shutdown (a long interval here, so only the shutdown stores)."""

from __future__ import annotations

import sqlite3
import time

from tests.support import Server, create_user, request, write_config

MiB = 1 << 20


def _props(body: bytes) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in body.decode().splitlines() if " " in line)


def test_counters_are_shown_at_once_and_stored_at_shutdown(tmp_path):
    config = write_config(tmp_path, io_counter_flush_seconds=3600)
    user, secret = create_user(config)
    server = Server(config).start()
    stopped = False
    try:
        status, _, body = request(server.url + "/drives/create", user, secret, b"name d\nsize 4M\n")
        drive = _props(body)["drive"]
        for offset in range(0, 4 * MiB, MiB):
            assert request(server.url + f"/drives/{drive}/write/{offset}", user, secret, b"\x07" * MiB)[0] == 204
        for _ in range(5):
            status, _, body = request(server.url + f"/drives/{drive}/read/0/{4 * MiB}", user, secret, method="GET")
            assert status == 200 and len(body) == 4 * MiB
        status, _, body = request(server.url + f"/drives/{drive}/info", user, secret, method="GET")
        info = _props(body)
        assert (info["read:bytes"], info["read:requests"]) == (str(20 * MiB), "5")
        assert (info["write:bytes"], info["write:requests"]) == (str(4 * MiB), "4")
        db = tmp_path / "var" / "elastic.db"
        with sqlite3.connect(db) as conn:  # nothing stored yet: the interval is an hour
            assert conn.execute("SELECT read_requests FROM drives WHERE id = ?", (drive,)).fetchone() == (0,)
        assert server.stop() == 0
        stopped = True
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT read_bytes, read_requests, write_bytes, write_requests FROM drives WHERE id = ?", (drive,)
            ).fetchone()
        assert row == (20 * MiB, 5, 4 * MiB, 4)
        server = Server(config).start()
        stopped = False
        status, _, body = request(server.url + f"/drives/{drive}/info", user, secret, method="GET")
        assert _props(body)["read:requests"] == "5"
    finally:
        if not stopped:
            server.stop()


def test_an_interval_of_zero_stores_at_once(tmp_path):
    config = write_config(tmp_path, io_counter_flush_seconds=0)
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        status, _, body = request(server.url + "/drives/create", user, secret, b"name d\nsize 1M\n")
        drive = _props(body)["drive"]
        assert request(server.url + f"/drives/{drive}/write/0", user, secret, b"\x01" * 1000)[0] == 204
        db = tmp_path / "var" / "elastic.db"
        deadline = time.monotonic() + 10
        while True:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT write_bytes, write_requests FROM drives WHERE id = ?", (drive,)).fetchone()
            if row == (1000, 1) or time.monotonic() > deadline:
                break
        assert row == (1000, 1)
    finally:
        server.stop()
