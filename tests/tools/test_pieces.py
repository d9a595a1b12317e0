"""The tools' pure pieces in-process: zero runs, the resume offset, backoff, env, progress, imports."""

from __future__ import annotations

import ast
import asyncio
import io
import os
import random
from email.utils import formatdate
from pathlib import Path

import pytest

from elastic_api.tools.api import (
    Api,
    ApiError,
    Endpoint,
    RetryPolicy,
    SetupError,
    TransportError,
    retriable,
    retry_after,
)
from elastic_api.tools.chunks import ChunkFailed, Transfer, data_runs, is_zero
from elastic_api.tools.progress import Progress, human_bytes, human_time
from elastic_api.tools.upload import encode
from tests.support import free_port

TOOLS = Path(__file__).resolve().parents[2] / "elastic_api" / "tools"
# The server's layers: a client tool importing them would drag the server (and libvirt) along.
SERVER_PACKAGES = (
    "elastic_api.http",
    "elastic_api.service",
    "elastic_api.store",
    "elastic_api.storage",
    "elastic_api.hypervisor",
    "elastic_api.app",
    "elastic_api.cli",
    "elastic_api.config",
)


def test_tools_import_no_server_package():
    for path in TOOLS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(SERVER_PACKAGES), f"{path.name} imports {name}"


def expand(data: bytes) -> bytes:
    """What a fresh file holds after writing only the data runs."""
    out = bytearray(len(data))
    for start, end in data_runs(data):
        out[start:end] = data[start:end]
    return bytes(out)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(10),
        bytes(4096),
        bytes(1 << 20),
        os.urandom(5000),
        b"x" + bytes(8192) + b"y",
        bytes(4095) + b"z" + bytes(4097),
        os.urandom(100) + bytes(70_000) + os.urandom(3) + bytes(5000),
        b"".join(random.Random(3).choice([os.urandom(5000), bytes(9000), bytes(100)]) for _ in range(200)),
    ],
)
def test_data_runs_keep_every_nonzero_byte(data):
    runs = data_runs(data)
    assert expand(data) == data
    assert runs == sorted(runs) and all(0 <= s < e <= len(data) for s, e in runs)
    skipped = len(data) - sum(e - s for s, e in runs)
    # Every zero run of a block or more is skipped, and nothing shorter is.
    longest = max((len(r) for r in data.split(b"\x01")), default=0)
    assert skipped == 0 or skipped >= 4096
    if len(data) >= 4096 and data == bytes(len(data)):
        assert runs == [] and longest == len(data)


def test_data_runs_shapes():
    assert data_runs(b"ab" + bytes(5000) + b"cd") == [(0, 2), (5002, 5004)]
    assert data_runs(bytes(5000) + b"cd") == [(5000, 5002)]
    assert data_runs(b"cd" + bytes(5000)) == [(0, 2)]
    assert data_runs(b"cd" + bytes(100) + b"e") == [(0, 103)]
    assert is_zero(bytes(10)) and is_zero(b"") and not is_zero(bytes(9) + b"\x01")


async def test_resume_is_the_lowest_unfinished_chunk_whatever_the_order():
    done: list[int] = []
    committed: list[int] = []

    # Later chunks finish first (200, then 100, then 0); the chunk at 300 fails once those three
    # are committed; later ones never finish. Ordered by events, not by sleeps: a busy machine
    # once let a 40 ms sleep end before a 30 ms one had been acted on.
    finished = {offset: asyncio.Event() for offset in (0, 100, 200)}
    all_committed = asyncio.Event()
    never = asyncio.Event()

    async def fetch(offset: int, length: int) -> int:
        after = {0: finished[100], 100: finished[200], 300: all_committed}.get(offset)
        if offset > 300:
            await never.wait()
        if after is not None:
            await after.wait()
        if offset == 300:
            raise TransportError("boom")
        done.append(offset)
        finished[offset].set()
        return offset

    async def commit(offset: int, length: int, result: int) -> None:
        committed.append(offset)
        if len(committed) == 3:
            all_committed.set()

    transfer: Transfer[int] = Transfer(0, 1000, 100, parallel=4)
    with pytest.raises(ChunkFailed) as failed:
        await transfer.run(fetch, commit)
    assert failed.value.offset == 300 and transfer.resume == 300
    assert committed == [0, 100, 200] and sorted(done) == [0, 100, 200]


async def test_transfer_window_bounds_the_lead_over_a_slow_chunk():
    started: list[int] = []

    async def fetch(offset: int, length: int) -> None:
        started.append(offset)
        if offset == 0:
            await asyncio.sleep(0.05)
            # While chunk 0 was slow, fetching ran at most `window` chunks ahead of it.
            assert max(started) < 4 * 10

    transfer: Transfer[None] = Transfer(0, 100, 10, parallel=2, window=4)
    await transfer.run(fetch)
    assert transfer.resume == 100 and sorted(started) == list(range(0, 100, 10))


async def test_transfer_odd_end_and_start():
    lengths: list[tuple[int, int]] = []

    async def fetch(offset: int, length: int) -> None:
        lengths.append((offset, length))

    transfer: Transfer[None] = Transfer(7, 30, 10, parallel=3)
    await transfer.run(fetch)
    assert sorted(lengths) == [(7, 10), (17, 10), (27, 3)] and transfer.resume == 30


def test_backoff_grows_caps_and_honours_retry_after():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for attempt, top in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        assert top / 2 <= policy.delay(attempt, None) <= top
    assert 5.0 <= policy.delay(0, 5.0) <= 5.5
    assert policy.delay(0, 10_000.0) <= policy.max_retry_after + 1


def test_retriable_statuses():
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert retriable(status, True)
    for status in (400, 401, 402, 403, 404, 405, 413, 501, 507):
        assert not retriable(status, True)
    # A create is sent again only when the server says it did nothing.
    assert retriable(503, False) and not retriable(500, False) and not retriable(409, False)


def test_retry_after_forms():
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({}) is None and retry_after({"Retry-After": "soon"}) is None
    later = retry_after({"Retry-After": formatdate(usegmt=True)})
    assert later is not None and 0 <= later <= 1


def test_endpoint_from_env():
    e = Endpoint.from_env({"EHURI": "http://h:1/api/", "EHAUTH": "u:s:with:colons"})
    assert e.url("drives/list") == "http://h:1/api/drives/list" and e.secret == "s:with:colons"
    assert Endpoint.from_env({"EHURI": "http://h:1/api", "EHAUTH": "u:s"}).url("/x") == "http://h:1/api/x"
    for environ in (
        {},
        {"EHURI": "http://h"},
        {"EHAUTH": "u:s"},
        {"EHURI": "ftp://h", "EHAUTH": "u:s"},
        {"EHURI": "http://h", "EHAUTH": "nocolon"},
        {"EHURI": "http://h", "EHAUTH": "u:"},
    ):
        with pytest.raises(SetupError):
            Endpoint.from_env(environ)


async def test_connection_refused_is_retried_then_reported():
    warnings: list[str] = []
    endpoint = Endpoint(f"http://127.0.0.1:{free_port()}", "u", "s")
    async with Api(endpoint, policy=RetryPolicy(retries=2, base_delay=0.01), warn=warnings.append) as api:
        with pytest.raises(TransportError) as failed:
            await api.call("GET", "/drives/list")
    assert "gave up after 2 retries" in failed.value.message and "cannot connect" in failed.value.message
    assert len(warnings) == 2 and "retry 1 of 2" in warnings[0]


def test_api_error_line():
    assert ApiError(404, "missing", "no such drive: x").message == "404 missing: no such drive: x"
    assert ApiError(502, "", "", "chunk at offset 0").message == "chunk at offset 0: 502"


def test_gzip_only_when_it_helps():
    body, headers = encode(bytes(1 << 20), True)
    assert headers["Content-Encoding"] == "gzip" and len(body) < 10_000
    noise = os.urandom(1 << 16)
    assert encode(noise, True) == (noise, {"Content-Type": "application/octet-stream"})
    assert encode(bytes(100), False)[1] == {"Content-Type": "application/octet-stream"}


def test_progress_line_and_quiet():
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(100 << 20, done=0, label="upload", stream=stream, enabled=True, clock=lambda: now[0])
    now[0] = 2.0
    progress.done = 20 << 20
    line = progress.line(100)
    assert len(line) <= 100 and "20%" in line and "20.0 MiB/100.0 MiB" in line
    assert "10.0 MiB/s" in line and "ETA 0:08" in line
    quiet = Progress(10, stream=stream, enabled=False)
    before = stream.getvalue()
    quiet.advance(5)
    quiet.close()
    assert stream.getvalue() == before
    assert human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KiB" and human_time(3725) == "1:02:05"
