"""The real program with its data dir on XFS (loop-mounted for the test, tests/loopfs.py): a
standard image gunzipped into a raw drive is a reflink of the image's base, the drive reads the
image byte for byte through the API, its writes stay its own, and the image can be removed while
the drive lives on (a reflink keeps no link)."""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loopfs import block_map, is_mounted, loop_mounted, shared_blocks, unavailable
from tests.support import Server, create_user, request, run_cli, write_config

IMAGE = "9b7e2c41-5d3a-4f6b-8e1c-2a4d6f8b0c35"
MiB = 1 << 20


@pytest.fixture
def on_xfs(tmp_path: Path) -> Iterator[tuple[Path, Server, str, str, bytes]]:
    reason = unavailable("xfs")
    if reason:
        pytest.skip(f"a loop-mounted xfs: {reason}")
    with loop_mounted("xfs", tmp_path / "xfs", 512 * MiB) as mountpoint:
        config = write_config(tmp_path, data_dir=str(mountpoint / "var"))
        rng = random.Random(29)
        data = rng.randbytes(1_500_000) + bytes(2 * MiB) + b"boot sector text " * 60_000 + rng.randbytes(3)
        raw = tmp_path / "image.raw"
        raw.write_bytes(data)
        added = run_cli(config, "image", "add", "--uuid", IMAGE, "--name", "Reflink me", str(raw))
        assert added.returncode == 0, added.stderr
        server = Server(config).start()
        try:
            user, secret = create_user(config)
            yield mountpoint, server, user, secret, data
        finally:
            server.stop()  # before the file system goes: it holds the database open
    assert not is_mounted(mountpoint)


def _props(body: bytes) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in body.decode().splitlines() if " " in line)


def test_a_raw_drive_imaged_on_xfs_is_a_reflink_of_the_base(on_xfs):
    mountpoint, server, user, secret, data = on_xfs

    def call(path: str, body: bytes | None = None, method: str = "POST") -> tuple[int, bytes]:
        status, _, reply = request(server.url + path, user, secret, body, method=method)
        return status, reply

    size = 8 * MiB
    status, body = call("/drives/create", f"name raw\nsize {size}\nformat raw\nencryption:cipher none\n".encode())
    assert status == 200, body
    drive = _props(body)["drive"]
    status, body = call(f"/drives/{drive}/image/{IMAGE}/gunzip")
    assert status == 204, body
    deadline = time.monotonic() + 120
    while "imaging" in (info := _props(call(f"/drives/{drive}/info", method="GET")[1])):
        assert time.monotonic() < deadline, "imaging did not finish"
        time.sleep(0.05)
    assert "imaging:error" not in info, info
    log = server.log.read_text()
    assert f"drive {drive} cloned from image {IMAGE} (reflink)" in log, log[-3000:]

    expected = data + bytes(size - len(data))
    status, body = call(f"/drives/{drive}/read/0/{size}", method="GET")
    assert status == 200 and body == expected
    drive_file = mountpoint / "var" / "pool" / f"{drive}.raw"
    base = mountpoint / "var" / "pool" / "bases" / f"{IMAGE}.raw"
    block = os.statvfs(base).f_bsize
    whole = {n: p for n, p in block_map(base).items() if n < base.stat().st_size // block}
    assert len(whole) * block > MiB
    assert {n: block_map(drive_file).get(n) for n in whole} == whole
    assert whole.keys() <= shared_blocks(drive_file)

    # The drive's write is its own; the base keeps the image's bytes.
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    patch = os.urandom(5000)
    status, _ = call(f"/drives/{drive}/write/4097", patch)
    assert status == 204
    status, body = call(f"/drives/{drive}/read/0/20000", method="GET")
    assert body == expected[:4097] + patch + expected[9097:20000]
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before

    # No link kept: the image goes, the drive still reads its bytes.
    removed = run_cli(server.config, "image", "remove", IMAGE)
    assert removed.returncode == 0, removed.stderr
    assert not base.exists()
    status, body = call(f"/drives/{drive}/read/20000/{size - 20000}", method="GET")
    assert status == 200 and body == expected[20000:]
