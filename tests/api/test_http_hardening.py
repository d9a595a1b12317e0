"""The HTTP layer against the real `elastic-api serve`, from a fault and bad-input campaign: an
error after an answer began, HEAD, half-closed clients, 100-continue, chunked writes, and what
the logs say about each."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from elastic_api.api.elastichosts.routes import ROUTES
from tests.api.rawhttp import Connection, Target
from tests.support import Server, create_user, write_config

MiB = 1 << 20
# A user's bytes that look like an answer: if they ever follow a HEAD's head, they answer the next request.
PLANTED = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Elastic-Output: list\r\n\r\nPWNED\n"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = write_config(tmp_path_factory.mktemp("hardening"))
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        yield server, Target.of(config, user, secret)
    finally:
        assert server.stop() == 0


async def until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        await asyncio.sleep(0.05)


def log_lines(server: Server, pattern: str) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if re.search(pattern, line)]


async def wait_for_log(server: Server, pattern: str, timeout: float = 30.0) -> list[str]:
    async def seen() -> bool:
        return bool(log_lines(server, pattern))

    await until(seen, timeout, f"a log line matching {pattern!r}")
    return log_lines(server, pattern)


async def create_drive(target: Target, size: str, **keys: str) -> str:
    c = await target.connect()
    try:
        body = f"name t\nsize {size}\n" + "".join(f"{k} {v}\n" for k, v in keys.items())
        answer = await c.ask("POST", "/drives/create", body.encode())
        assert answer.status == 200, answer.body
        return dict(line.split(" ", 1) for line in answer.body.decode().splitlines())["drive"]
    finally:
        c.close()


async def write(target: Target, drive: str, offset: int, data: bytes) -> None:
    c = await target.connect()
    try:
        assert (await c.ask("POST", f"/drives/{drive}/write/{offset}", data)).status == 204
    finally:
        c.close()


def children_named(pid: int, name: str, needle: str) -> list[int]:
    """Processes under pid whose command line holds name and needle (the drive's ID)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and name in cmdline and needle in cmdline:
            found.append(int(entry))
    return found


# -- 1 and 11: an error after the answer began ------------------------------------------------------
async def test_storage_daemon_killed_mid_read_aborts_the_connection(running):
    server, target = running
    drive = await create_drive(target, "32M", format="qcow2", **{"encryption:cipher": "none"})
    for offset in range(0, 32 * MiB, 8 * MiB):
        await write(target, drive, offset, bytes([offset // MiB + 1]) * (8 * MiB))
    c = await target.connect()
    try:
        await c.send("GET", f"/drives/{drive}/read/0/32M")
        status, headers, _ = await c.head_of_answer()
        assert status == 200 and headers["content-length"] == str(32 * MiB)
        got = await c.reader.readexactly(MiB)  # the answer is under way; then the client stops reading

        async def daemon() -> bool:
            return bool(children_named(server.process.pid, "qemu-storage-daemon", drive))

        await until(daemon, what="the drive's qemu-storage-daemon")
        for pid in children_named(server.process.pid, "qemu-storage-daemon", drive):
            os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        got += await c.rest(timeout=30)  # the server closes the connection, not after a 60 s wait
        assert time.monotonic() - began < 20
    finally:
        c.close()
    assert len(got) < 32 * MiB  # cut short: the client knows the body is incomplete
    assert b"HTTP/1.1" not in got and b"internal error" not in got  # no second answer inside the body
    aborted = await wait_for_log(server, rf"aborted the answer to GET /drives/{drive}/read")
    assert len(aborted) == 1
    # The access log says what the client saw: 200, the body bytes it got, and that it was cut off.
    access = await wait_for_log(server, rf'"GET /drives/{drive}/read/0/32M" ')
    assert len(access) == 1 and re.search(rf'" 200 {len(got)} \S+s aborted$', access[0]), access
    assert "Traceback" not in server.log.read_text()


async def test_complete_reads_on_one_connection_and_their_access_lines(running):
    server, target = running
    drives = {
        fmt: await create_drive(target, "4M", format=fmt, **{"encryption:cipher": "none"}) for fmt in ("raw", "qcow2")
    }
    c = await target.connect()
    try:
        for fmt, drive in drives.items():
            await write(target, drive, 0, b"\x42" * (4 * MiB))
            first = await c.ask("GET", f"/drives/{drive}/read/0/4M")
            assert first.status == 200 and first.body == b"\x42" * (4 * MiB), fmt
            second = await c.ask("GET", "/drives/list")  # the same connection carries on
            assert second.status == 200 and drive.encode() in second.body
    finally:
        c.close()
    for drive in drives.values():  # sendfile (raw) and writes (qcow2) alike: the body's bytes
        lines = await wait_for_log(server, rf'"GET /drives/{drive}/read/0/4M" ')
        assert len(lines) == 1 and re.search(rf'" 200 {4 * MiB} \S+s$', lines[0]), lines


# -- 2: HEAD never carries a body -----------------------------------------------------------------
def route_paths(ids: dict[str, str]) -> list[str]:
    return [re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], route.path) for route in ROUTES]


async def test_head_never_carries_a_body_on_any_route(running):
    _, target = running
    drives = {
        "raw": await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"}),
        "qcow2": await create_drive(target, "1M", format="qcow2", **{"encryption:cipher": "none"}),
        "encrypted": await create_drive(target, "1M", **{"encryption:cipher": "aes-xts-plain"}),
    }
    for drive in drives.values():
        await write(target, drive, 0, PLANTED)
    c = await target.connect()
    try:
        server = await c.ask("POST", "/servers/create/stopped", b"name h\ncpu 1000\nmem 256\n")
        assert server.status == 200, server.body
        ip = await c.ask("POST", "/resources/ip/create", b"name h\n")
        assert ip.status == 200, ip.body
        ids = {
            "server": dict(line.split(" ", 1) for line in server.body.decode().splitlines())["server"],
            "type": "ip",
            "resource": dict(line.split(" ", 1) for line in ip.body.decode().splitlines())["resource"],
            "offset": "0",
            "size": "64",
            "source": drives["raw"],
            "conversion": "gunzip",
        }
        paths = []
        for drive in drives.values():
            paths += route_paths({**ids, "drive": drive})
        paths += ["/no/such/command"]
        seen = set()
        for path in paths:
            for extra in ({}, {"Accept-Encoding": "gzip"}, {"Accept": "application/json"}):
                head = await c.ask("HEAD", path, headers=extra)
                seen.add(head.status)
                # Whatever HEAD answered, the next answer on this connection is the next request's.
                after = await c.ask("GET", "/drives/list")
                assert after.status == 200 and b"PWNED" not in after.body, (path, extra, head.head)
                assert after.headers.get("x-elastic-output") == "list", (path, extra)
        unauthenticated = await c.ask("HEAD", f"/drives/{drives['raw']}/read/0/64", auth="Basic eDp5")
        assert unauthenticated.status == 401
        assert (await c.ask("GET", "/drives/list")).status == 200
        # A GET of the same range does carry the planted bytes: HEAD's answer above was its head alone.
        read = await c.ask("GET", f"/drives/{drives['qcow2']}/read/0/{len(PLANTED)}")
        assert read.body == PLANTED
    finally:
        c.close()
    assert {200, 404, 405} <= seen


# -- 12: half-closed clients, 100-continue, chunked writes -------------------------------------------
async def test_a_client_that_half_closes_gets_its_answer(running):
    _, target = running
    drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
    await write(target, drive, 0, b"\x01" * 100)
    for path in (f"/drives/{drive}/write/0", "/drives/create"):
        c = await target.connect()
        try:
            await c.send("POST", path, b"\x07" * 10, length=100)  # a short body, then the client is done
            c.writer.write_eof()
            answer = await c.answer(timeout=15)
            assert answer.status == 400 and answer.error == "usage", answer.head
            assert b"ended before its Content-Length" in answer.body
            assert await c.rest(timeout=15) == b""  # then the server closes
        finally:
            c.close()
    # A whole request then a half-close (as `printf ... | nc -N` does): answered, then closed.
    c = await target.connect()
    try:
        await c.send("GET", f"/drives/{drive}/read/0/100")
        c.writer.write_eof()
        answer = await c.answer(timeout=15)
        assert answer.status == 200 and answer.body == b"\x01" * 100
        assert await c.rest(timeout=15) == b""
    finally:
        c.close()
    # Nothing of the short write landed.
    c = await target.connect()
    try:
        assert (await c.ask("GET", f"/drives/{drive}/read/0/100")).body == b"\x01" * 100
    finally:
        c.close()


async def test_100_continue_only_after_authentication_and_checks(running):
    _, target = running
    drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
    expect = {"Expect": "100-continue"}
    cases = [
        ("Basic eDp5", f"/drives/{drive}/write/0", 401),  # wrong credentials
        (None, "/drives/00000000-0000-4000-8000-000000000000/write/0", 404),  # no such drive
        (None, f"/drives/{drive}/write/{2 * MiB}", 507),  # past the end
        (None, "/drives/no/such/command", 404),  # no such command
    ]
    for auth, path, status in cases:
        c = await target.connect()
        try:
            await c.send("POST", path, auth=auth, headers=expect, length=4096)  # headers only: waits as curl does
            answer = await c.answer(timeout=15)
            assert answer.status == status, (path, answer.head)  # a final answer, no 100 Continue first
        finally:
            c.close()
    c = await target.connect()
    try:
        await c.send("POST", f"/drives/{drive}/write/0", headers=expect, length=4096)
        interim = await c.answer(timeout=15)
        assert interim.status == 100
        c.writer.write(b"\x09" * 4096)
        assert (await c.answer(timeout=15)).status == 204
        assert (await c.ask("GET", f"/drives/{drive}/read/0/4096")).body == b"\x09" * 4096
        # A metadata body waits for its 100 too, and only then is read.
        await c.send("POST", "/drives/create", headers=expect, length=len(b"name e\nsize 1M\n"))
        assert (await c.answer(timeout=15)).status == 100
        c.writer.write(b"name e\nsize 1M\n")
        assert (await c.answer(timeout=15)).status == 200
    finally:
        c.close()


def chunked(data: bytes, piece: int) -> bytes:
    out = b"".join(
        f"{len(data[i : i + piece]):x}\r\n".encode() + data[i : i + piece] + b"\r\n" for i in range(0, len(data), piece)
    )
    return out + b"0\r\n\r\n"


async def test_chunked_writes_work_and_are_checked_like_gzip_ones(running):
    _, target = running
    drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
    te = {"Transfer-Encoding": "chunked"}
    c = await target.connect()
    try:
        data = bytes(range(256)) * 1000
        assert (await c.ask("POST", f"/drives/{drive}/write/4096", chunked(data, 7000), headers=te)).status == 204
        assert (await c.ask("GET", f"/drives/{drive}/read/4096/{len(data)}")).body == data
        packed = gzip.compress(data)
        answer = await c.ask(
            "POST", f"/drives/{drive}/write/0", chunked(packed, 999), headers={**te, "Content-Encoding": "gzip"}
        )
        assert answer.status == 204
        past = await c.ask("POST", f"/drives/{drive}/write/{MiB - 100}", chunked(b"\xff" * 200, 50), headers=te)
        assert past.status == 507 and past.error == "full"
        assert (await c.ask("GET", f"/drives/{drive}/read/{MiB - 100}/100")).body == bytes(100)
    finally:
        c.close()
    c = await target.connect()  # both framings at once (a smuggling attempt): refused, nothing written
    try:
        await c.send(
            "POST", f"/drives/{drive}/write/0", chunked(b"\xee" * 10, 10), headers={**te, "Content-Length": "15"}
        )
        answer = await c.answer(timeout=15)
        assert answer.status == 400 and answer.error == "usage"
    finally:
        c.close()
    c = await target.connect()
    try:
        assert (await c.ask("GET", f"/drives/{drive}/read/0/10")).body != b"\xee" * 10
    finally:
        c.close()


# -- 10: one line per event, no traceback for a client's own failure ----------------------------------
async def test_client_failures_log_one_line_and_no_traceback(running):
    server, target = running
    drive = await create_drive(target, "8M", format="raw", **{"encryption:cipher": "none"})
    c = await target.connect()
    await c.send("POST", f"/drives/{drive}/write/0", b"\x05" * MiB, length=8 * MiB)
    # A dropped upload: a reset, not a half-close (SO_LINGER 0 makes close send RST, not FIN).
    c.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.writer.transport.abort()
    await wait_for_log(server, rf"left during POST /drives/{drive}/write/0")
    c = await target.connect()
    c.writer.write(b"BREW /pot HTTP/1.1\r\n\r\n")
    assert re.match(rb"HTTP/1.[01] 400 ", await c.rest(timeout=15))
    c.close()
    c = await target.connect()  # a malformed header line that quotes a secret: the secret is not logged
    c.writer.write(b"GET /drives/list HTTP/1.1\r\nHost: x\r\nAuthorization: Basic zq-canary-secret\x01\r\n\r\n")
    assert re.match(rb"HTTP/1.[01] 400 ", await c.rest(timeout=15))
    c.close()
    await wait_for_log(server, r"refused a message from")
    access = await wait_for_log(server, rf'"POST /drives/{drive}/write/0" ')
    assert re.search(r'" 499 0 \S+s aborted$', access[0]), access
    log = server.log.read_text()
    assert "Traceback" not in log and "zq-canary-secret" not in log


def test_descriptors_running_out_log_a_line_a_second(tmp_path):
    """1,500 connections at a 1,024-descriptor limit: asyncio logged a traceback for each failed
    accept, many a millisecond; now one line a second, with a count."""
    import resource

    config = write_config(tmp_path)
    user, secret = create_user(config)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # inherited by the server
    try:
        server = Server(config).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    target = Target.of(config, user, secret)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    began = time.monotonic()
    try:

        async def flood() -> list[int]:
            # Each client holds its connection until the server has run out of descriptors (or all
            # were answered, when the assertion below says the test did not test).
            release = asyncio.Event()
            answered = []

            async def one() -> int:
                c = await target.connect()
                try:
                    answered.append((await c.ask("GET", "/drives/list", timeout=120)).status)
                    await release.wait()
                    return answered[-1]
                finally:
                    c.close()

            async def watch() -> None:
                while len(answered) < 1500 and not re.search(
                    r"cannot accept connections|accept\(\) out of system", server.log.read_text()
                ):
                    await asyncio.sleep(0.1)
                release.set()

            watcher = asyncio.create_task(watch())
            try:
                return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(1500))), 240)
            finally:
                watcher.cancel()

        statuses = asyncio.run(flood())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert server.stop() == 0
    elapsed = time.monotonic() - began
    assert statuses == [200] * 1500
    log = server.log.read_text()
    assert "Traceback" not in log and "out of system resource" not in log
    accept = [line for line in log.splitlines() if "cannot accept connections" in line]
    assert accept, "the flood never reached the limit: the test did not test"
    assert len(accept) <= elapsed + 2, (len(accept), elapsed)


# -- 5: a minimum body rate ----------------------------------------------------------------------
GRACE = 2


@pytest.fixture(scope="module")
def rate_limited(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = write_config(tmp_path_factory.mktemp("rate"), min_body_rate=1000, body_rate_grace=GRACE)
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        yield server, Target.of(config, user, secret)
    finally:
        assert server.stop() == 0


async def trickle(c: Connection, data: bytes, pause: float) -> None:
    try:
        for i in range(len(data)):
            c.writer.write(data[i : i + 1])
            await c.writer.drain()
            await asyncio.sleep(pause)
    except (ConnectionError, OSError):
        pass


async def test_a_trickling_body_is_cut_off_at_the_minimum_rate(rate_limited):
    server, target = rate_limited
    drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
    loop = asyncio.get_running_loop()
    c = await target.connect()
    try:
        await c.send("POST", f"/drives/{drive}/write/0", length=1000)
        began = loop.time()
        sender = asyncio.create_task(trickle(c, b"\x03" * 1000, 0.2))  # 5 bytes a second: under 1000
        answer = await c.answer(timeout=15)  # body_timeout (30 s) would never fire: a byte every 0.2 s
        sender.cancel()
        assert answer.status == 408 and answer.error == "usage" and b"too slow" in answer.body
        assert GRACE - 0.2 <= loop.time() - began <= GRACE + 3
    finally:
        c.close()
    c = await target.connect()
    try:
        assert (await c.ask("GET", f"/drives/{drive}/read/0/1000")).body == bytes(1000)  # nothing landed
    finally:
        c.close()
    assert "Traceback" not in server.log.read_text()


async def test_a_slow_but_steady_body_past_the_grace_is_fine(rate_limited):
    _, target = rate_limited
    drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
    data = bytes(range(256)) * 256
    c = await target.connect()
    try:
        await c.send("POST", f"/drives/{drive}/write/0", length=len(data))
        for i in range(0, len(data), len(data) // 8):  # 8 KiB every 0.5 s: 16 KB/s for 4 s
            c.writer.write(data[i : i + len(data) // 8])
            await c.writer.drain()
            await asyncio.sleep(0.5)
        assert (await c.answer(timeout=15)).status == 204
        assert (await c.ask("GET", f"/drives/{drive}/read/0/{len(data)}")).body == data
    finally:
        c.close()


# -- 7: SIGTERM lets uploads in flight finish ---------------------------------------------------------
async def refused(target: Target) -> bool:
    try:
        c = await target.connect()
    except ConnectionRefusedError:
        return True
    c.close()
    return False


async def test_sigterm_lets_an_upload_in_flight_finish(tmp_path):
    config = write_config(tmp_path)  # the default shutdown_grace
    user, secret = create_user(config)
    server = Server(config).start()
    target = Target.of(config, user, secret)
    try:
        drive = await create_drive(target, "8M", format="raw", **{"encryption:cipher": "none"})
        data = bytes(range(256)) * (4 * MiB // 256)
        idle = await target.connect()
        assert (await idle.ask("GET", "/drives/list")).status == 200  # a keep-alive connection, now idle
        c = await target.connect()
        # 100 Continue says the upload is in the handler, reading its body: in flight for sure.
        await c.send("POST", f"/drives/{drive}/write/0", length=len(data), headers={"Expect": "100-continue"})
        assert (await c.answer()).status == 100
        c.writer.write(data[: 3 * MiB])
        await c.writer.drain()
        began = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await wait_for_log(server, "stopping: no new connections")
        await until(lambda: refused(target), 15, "new connections refused")
        assert await idle.rest(timeout=15) == b""  # the idle connection is closed
        c.writer.write(data[3 * MiB :])  # the rest of the upload, after SIGTERM
        answer = await c.answer(timeout=15)
        assert answer.status == 204 and answer.headers.get("connection", "").lower() == "close"
        assert await asyncio.to_thread(server.process.wait, 15) == 0
        assert time.monotonic() - began < 15  # promptly: not body_timeout's 30 s
        c.close()
        idle.close()
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()
    server.start()
    try:
        c = await target.connect()
        assert (await c.ask("GET", f"/drives/{drive}/read/0/4M")).body == data
        c.close()
    finally:
        assert server.stop() == 0


async def test_sigterm_cuts_off_what_outlives_the_grace(tmp_path):
    config = write_config(tmp_path, shutdown_grace=2)
    user, secret = create_user(config)
    server = Server(config).start()
    target = Target.of(config, user, secret)
    try:
        drive = await create_drive(target, "1M", format="raw", **{"encryption:cipher": "none"})
        c = await target.connect()
        await c.send("POST", f"/drives/{drive}/write/0", length=2000, headers={"Expect": "100-continue"})
        assert (await c.answer()).status == 100  # in flight
        c.writer.write(b"\x08" * 1000)  # then it stalls
        await c.writer.drain()
        began = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 20) == 0
        assert time.monotonic() - began < 2 + 8  # the grace, not body_timeout
        c.close()
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()
    server.start()
    try:
        c = await target.connect()
        assert (await c.ask("GET", f"/drives/{drive}/read/0/1000")).body == bytes(1000)  # nothing landed
        c.close()
    finally:
        assert server.stop() == 0
