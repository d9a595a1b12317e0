"""The real program with its data directory on a small tmpfs that a test fills: creates and sets
answer 507 full (not 500 system), a destroy still works and frees space, and a write that lands
answers 204 even though its I/O counters cannot be stored."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, create_user, request, write_config

MiB = 1 << 20


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs of the test's own (the machine's disk is shared: never fill that)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path: Path) -> Path:
    """Write a file until the filesystem refuses another byte; ENOSPC is the only way out."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (MiB, 4096, 1):
            block = b"\xa5" * size
            while True:
                try:
                    f.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    return filler


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Client:
    def __init__(self, server: Server, user: str, secret: str) -> None:
        self.server, self.user, self.secret = server, user, secret

    def __call__(self, path: str, body: bytes | None = None, **kw):
        status, headers, reply = request(self.server.url + path, self.user, self.secret, body, **kw)
        return status, headers.get("X-Elastic-Error"), reply

    def create(self, text: bytes, path: str = "/drives/create") -> str:
        status, _, body = self(path, text)
        assert status == 200, body
        props = dict(line.split(" ", 1) for line in body.decode().splitlines() if " " in line)
        return props.get("drive") or props.get("server") or props["resource"]


def start(tmpfs: Path, tmp_path: Path, **extra) -> tuple[Server, Client]:
    config = write_config(tmp_path, data_dir=str(tmpfs / "var"), **extra)
    user, secret = create_user(config)
    server = Server(config).start()
    return server, Client(server, user, secret)


def test_a_full_disk_answers_507_and_destroy_still_frees_space(tmpfs, tmp_path):
    # Counters stored every 0.1 s: the full disk refuses them while it lasts.
    server, api = start(tmpfs, tmp_path, io_counter_flush_seconds=0.1)
    try:
        reserve = tmpfs / "var" / "elastic.db.reserve"
        wait_for(lambda: reserve.exists() and reserve.stat().st_size == 8 * MiB)  # the default db_reserve
        kept = api.create(b"name kept\nsize 4M\n")
        assert api(f"/drives/{kept}/write/0", os.urandom(256 * 1024))[0] == 204
        big = api.create(b"name big\nsize 8M\n")
        assert api(f"/drives/{big}/write/0", os.urandom(6 * MiB))[0] == 204
        doomed = api.create(b"name s\ncpu 1000\nmem 64\n", "/servers/create/stopped")
        filler = fill(tmpfs)
        assert free(tmpfs) == 0

        # Creates and sets of every kind: 507 full, one line, nothing half made.
        for path, body in [
            ("/drives/create", b"name n\nsize 1M\n"),
            (f"/drives/{kept}/set", b"name renamed\n"),
            ("/servers/create/stopped", b"name s\ncpu 1000\nmem 64\n"),
            (f"/servers/{doomed}/set", b"name renamed\n"),
            ("/resources/vlan/create", b"name v\n"),
        ]:
            status, error, body = api(path, body)
            assert (status, error) == (507, "full"), (path, status, body)
            assert body.count(b"\n") == 1 and b"Traceback" not in body
        # A write into blocks the drive already has lands: 204, though its counters cannot be stored.
        assert api(f"/drives/{kept}/write/0", os.urandom(256 * 1024))[:2] == (204, None)
        wait_for(lambda: "I/O counters not stored" in server.log.read_text())
        # One that needs new blocks does not fit: 507 full, as the protocol says.
        assert api(f"/drives/{kept}/write/{MiB}", os.urandom(512 * 1024))[:2] == (507, "full")
        status, _, listed = api("/drives/list", method="GET")
        assert status == 200 and listed.decode().split() == [kept, big]  # the failed create left nothing

        # Destroy works on the full disk, and frees the drive's blocks.
        before = free(tmpfs)
        assert api(f"/drives/{big}/destroy")[:2] == (204, None)
        assert free(tmpfs) >= before + 6 * MiB
        assert api(f"/servers/{doomed}/destroy")[:2] == (204, None)
        assert api(f"/drives/{big}/info", method="GET")[0] == 404

        # With room again, everything works and the reserve is taken back.
        filler.unlink()
        api.create(b"name after\nsize 1M\n")
        assert api(f"/drives/{kept}/set", b"name renamed\n")[0] == 200
        wait_for(lambda: reserve.exists() and reserve.stat().st_size == 8 * MiB)
        # The counts the full disk refused were kept and stored once it had room: none lost.
        status, _, info = api(f"/drives/{kept}/info", method="GET")
        assert b"\nwrite:requests 2\n" in info, info
    finally:
        assert server.stop() == 0
    log = server.log.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert "I/O counters not stored" in log  # the lost count is logged, not answered


def test_without_the_reserve_a_destroy_on_a_full_disk_is_507_not_500(tmpfs, tmp_path):
    """The negative case: db_reserve 0 shows why the reserve exists, and that even then the
    answer is 507 full, never a 500."""
    server, api = start(tmpfs, tmp_path, db_reserve=0)
    try:
        drive = api.create(b"name d\nsize 1M\n")
        filler = fill(tmpfs)
        status, error, body = api(f"/drives/{drive}/destroy")
        assert (status, error) == (507, "full"), body
        filler.unlink()
        assert api(f"/drives/{drive}/destroy")[:2] == (204, None)
        assert not (tmpfs / "var" / "elastic.db.reserve").exists()
    finally:
        assert server.stop() == 0
