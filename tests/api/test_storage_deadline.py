"""A frozen qemu-storage-daemon (SIGSTOP) against the real `elastic-api serve`: a write to its
drive fails within storage_timeout and the export is restarted, so the next write works; and
writes stuck on it give their upload slots back when their clients leave."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import Server, create_user, request, write_config

MiB = 1 << 20
DEADLINE = 3
# Scheduling noise on a shared two-core machine, on top of what is measured.
SLACK = 20


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not met within {timeout} s"
        time.sleep(0.05)


def daemons(drive: str) -> list[int]:
    """Pids of the qemu-storage-daemons serving this drive (its UUID is in their command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and argv and argv[0].endswith(b"qemu-storage-daemon") and drive.encode() in b" ".join(argv):
            found.append(int(entry))
    return found


class Api:
    def __init__(self, config: Path, user: str, secret: str, server: Server) -> None:
        self.user, self.secret, self.server = user, secret, server
        self.host, port = yaml.safe_load(config.read_text())["listen"].rsplit(":", 1)
        self.port = int(port)

    def __call__(self, path: str, body: bytes | None = None, **kw):
        status, headers, reply = request(self.server.url + path, self.user, self.secret, body, **kw)
        return status, headers.get("X-Elastic-Error"), reply

    def drive(self, text: bytes) -> str:
        status, _, body = self("/drives/create", text)
        assert status == 200, body
        return dict(line.split(" ", 1) for line in body.decode().splitlines())["drive"]

    def uploads_at_once(self, drive: str, count: int) -> list[int]:
        """The statuses of `count` small writes sent before any answer is read."""
        sockets = [self.send_write(drive, b"z" * 4096) for _ in range(count)]
        try:
            statuses = []
            for sock in sockets:
                sock.settimeout(60)
                with sock.makefile("rb") as answer:
                    statuses.append(int(answer.readline().split()[1]))
            return statuses
        finally:
            for sock in sockets:
                sock.close()

    def send_write(self, drive: str, data: bytes) -> socket.socket:
        """A whole write request on a socket of its own, the answer left unread."""
        token = base64.b64encode(f"{self.user}:{self.secret}".encode()).decode()
        sock = socket.create_connection((self.host, self.port))
        sock.sendall(
            (
                f"POST /drives/{drive}/write/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        return sock


@pytest.fixture
def frozen_setup(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Api, str]]:
    """A server (with the storage_timeout the test asks for), a qcow2 drive whose export is up,
    and that drive's daemon; every daemon left stopped is continued at the end."""
    timeout = request.param
    # A long idle time keeps the export (and so the daemon we freeze) up between requests.
    config = write_config(tmp_path, storage_timeout=timeout, qcow2_export_idle=600)
    user, secret = create_user(config)
    server = Server(config).start()
    api = Api(config, user, secret, server)
    drive = api.drive(b"name q\nsize 16M\nformat qcow2\nencryption:cipher none\n")
    try:
        yield api, drive
    finally:
        for pid in daemons(drive):
            os.kill(pid, signal.SIGCONT)
        assert server.stop() == 0
        log = server.log.read_text()
        assert "Traceback" not in log, log[-4000:]


@pytest.mark.parametrize("frozen_setup", [DEADLINE], indirect=True)
def test_a_frozen_daemon_fails_writes_within_the_deadline_and_is_restarted(frozen_setup):
    api, drive = frozen_setup
    first = os.urandom(64 * 1024)
    assert api(f"/drives/{drive}/write/0", first)[:2] == (204, None)
    [pid] = wait_for(lambda: daemons(drive), what="the drive's daemon")
    os.kill(pid, signal.SIGSTOP)

    started = time.monotonic()
    status, error, body = api(f"/drives/{drive}/write/{MiB}", os.urandom(64 * 1024))
    assert (status, error) == (500, "failed"), body
    assert b"did not answer" in body and body.count(b"\n") == 1
    assert DEADLINE <= time.monotonic() - started < DEADLINE + SLACK
    # The frozen daemon is killed (SIGKILL: a stopped process never acts on SIGTERM)...
    wait_for(lambda: pid not in daemons(drive), what="the frozen daemon gone")

    # ...and the next requests work on a fresh one, with the bytes written before the freeze.
    second = os.urandom(64 * 1024)
    assert api(f"/drives/{drive}/write/{2 * MiB}", second)[:2] == (204, None)
    assert api(f"/drives/{drive}/read/0/65536", method="GET")[2] == first
    assert api(f"/drives/{drive}/read/{2 * MiB}/65536", method="GET")[2] == second
    [fresh] = daemons(drive)
    assert fresh != pid

    # Reads have the same deadline. A read's 200 and length are sent before its bytes are
    # fetched, so it ends as a body cut short (or a 500 if it failed first): never a hang.
    os.kill(fresh, signal.SIGSTOP)
    started = time.monotonic()
    try:
        status, error, body = api(f"/drives/{drive}/read/0/65536", method="GET")
        assert (status, error) == (500, "failed"), (status, body[:100])
    except (http.client.IncompleteRead, ConnectionError):
        pass
    assert time.monotonic() - started < DEADLINE + SLACK
    wait_for(lambda: fresh not in daemons(drive), what="the second frozen daemon gone")
    assert api(f"/drives/{drive}/read/0/65536", method="GET")[2] == first


@pytest.mark.parametrize("frozen_setup", [600], indirect=True)
def test_writes_whose_clients_leave_give_their_upload_slots_back(frozen_setup):
    """storage_timeout is 600 here: only the clients leaving can free the slots in time."""
    api, drive = frozen_setup
    other = api.drive(b"name raw\nsize 1M\n")
    assert api(f"/drives/{drive}/write/0", b"x" * 4096)[:2] == (204, None)
    [pid] = wait_for(lambda: daemons(drive), what="the drive's daemon")
    os.kill(pid, signal.SIGSTOP)

    stuck = [api.send_write(drive, os.urandom(64 * 1024)) for _ in range(8)]  # max_uploads_per_user
    try:
        # All eight are stuck on the frozen daemon holding their slots: the user's next upload
        # is refused, and the drive cannot be destroyed while they are in flight.
        wait_for(lambda: api(f"/drives/{other}/write/0", b"y" * 4096)[0] == 503, what="all slots taken")
        assert api(f"/drives/{drive}/destroy")[:2] == (409, "busy")
    finally:
        for sock in stuck:
            sock.close()
    # The clients left: within a few seconds (not storage_timeout's 600) all eight slots are
    # free again (eight uploads at once are all taken) and the frozen drive is no longer busy.
    started = time.monotonic()
    wait_for(lambda: api.uploads_at_once(other, 8) == [204] * 8, timeout=SLACK, what="all slots back")
    assert time.monotonic() - started < SLACK
    os.kill(pid, signal.SIGCONT)
    assert api(f"/drives/{drive}/destroy")[:2] == (204, None)
