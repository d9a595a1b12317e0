"""Upload and download round trips through the real server: odd sizes, zeros, sparse files, -d, --verify."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re

import pytest

from tests.tools.conftest import BIN, MiB, mixed, tool, zero_blocks

CREATED = re.compile(r"^Created drive ([0-9a-f-]{36}) of size (\d+)$", re.M)


def created_drive(stdout: str) -> str:
    match = CREATED.search(stdout)
    assert match, stdout
    return match.group(1)


def assert_sparse(path, data: bytes) -> None:
    """The file's zero regions are holes: it allocates little more than its non-zero blocks."""
    allocated = os.stat(path).st_blocks * 512
    holes = zero_blocks(data) * 4096
    assert holes > len(data) // 5, "the test data should have zero regions"
    assert allocated <= len(data) - holes + len(data) // 100 + 64 * 1024, (allocated, len(data), holes)


@pytest.mark.parametrize(("chunk", "parallel"), [("1M", "4"), ("4M", "1"), ("5M", "3")])
async def test_round_trip(account, tmp_path, chunk, parallel):
    size = 13 * MiB + 4321
    data = mixed(size, seed=len(chunk) + int(chunk[0]))
    source, copy = tmp_path / "source.img", tmp_path / "copy.img"
    source.write_bytes(data)
    env = account.env()

    up = await tool("elastichosts-upload", "-c", chunk, "-p", parallel, "-n", "round trip", source, env=env)
    assert up.returncode == 0, up.stderr
    drive = created_drive(up.stdout)
    assert f"of size {size}" in up.stdout and up.stderr == ""  # not a terminal: no progress bar
    info = account.info(drive)
    assert info["name"] == "round trip" and int(info["size"]) == size
    chunk_bytes = int(chunk[0]) * MiB
    pieces = [data[o : o + chunk_bytes] for o in range(0, size, chunk_bytes)]
    nonzero = sum(1 for piece in pieces if piece != bytes(len(piece)))
    # All-zero chunks never travel into a drive this upload created: it reads as zeros already.
    assert int(info["write:requests"]) == nonzero

    down = await tool("elastichosts-download", "-c", chunk, "-p", parallel, drive, copy, env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout == "" and down.stderr == ""
    assert copy.read_bytes() == data
    assert_sparse(copy, data)


async def test_upload_into_existing_drive_sends_zero_chunks(account, tmp_path):
    size = 6 * MiB + 777
    drive = account.create_drive(size + MiB)
    noise, data = tmp_path / "noise", tmp_path / "data"
    noise.write_bytes(os.urandom(size))
    data.write_bytes(bytes(2 * MiB) + os.urandom(MiB) + bytes(size - 3 * MiB))
    env = account.env()
    assert (await tool("elastichosts-upload", "-c", "1M", "-d", drive, noise, env=env)).returncode == 0
    over = await tool("elastichosts-upload", "-c", "1M", "-d", drive, data, env=env)
    assert over.returncode == 0 and over.stdout == "", over.stderr
    # The drive held noise, so the zero chunks had to be written over it.
    assert account.read_drive(drive, size) == data.read_bytes()


async def test_verify_after_upload_and_download(account, tmp_path):
    size = 3 * MiB + 5
    data = mixed(size, seed=9)
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    env = account.env()
    up = await tool("elastichosts-upload", "--verify", "-c", "1M", source, env=env)
    assert up.returncode == 0, up.stderr
    assert f"Verified {size} bytes: SHA-256 matches" in up.stdout
    drive = created_drive(up.stdout)
    down = await tool("elastichosts-download", "--verify", "--no-gzip", drive, copy, env=env)
    assert down.returncode == 0 and f"Verified {size} bytes" in down.stdout, down.stderr
    assert copy.read_bytes() == data


async def test_download_resumes_from_the_file_size_and_overwrites_with_offset(account, tmp_path):
    size = 5 * MiB + 99
    data = mixed(size, seed=4)
    drive = account.create_drive(size)
    env = account.env()
    source, copy = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(data)
    assert (await tool("elastichosts-upload", "-d", drive, source, env=env)).returncode == 0
    copy.write_bytes(data[: 2 * MiB + 3])  # an earlier, interrupted download
    assert (await tool("elastichosts-download", "-c", "1M", drive, copy, env=env)).returncode == 0
    assert copy.read_bytes() == data
    again = await tool("elastichosts-download", drive, copy, env=env)  # complete: nothing left to do
    assert again.returncode == 0 and copy.read_bytes() == data
    # -o rewrites from there on: garbage past the offset is replaced, bytes before it are kept.
    with open(copy, "r+b") as f:
        f.seek(4 * MiB)
        f.write(b"garbage" * 1000)
    assert (await tool("elastichosts-download", "-o", "3M", drive, copy, env=env)).returncode == 0
    assert copy.read_bytes() == data


async def test_refuses_mismatched_sizes(account, tmp_path):
    env = account.env()
    small = account.create_drive(MiB)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MiB + 1))
    up = await tool("elastichosts-upload", "-d", small, big, env=env)
    assert up.returncode == 1 and "fewer than" in up.stderr
    down = await tool("elastichosts-download", small, big, env=env)  # a file larger than the drive
    assert down.returncode == 2 and "-o 0" in down.stderr and big.stat().st_size == MiB + 1
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert (await tool("elastichosts-upload", empty, env=env)).returncode == 2
    usage = await tool("elastichosts-upload", "-o", "1M", big, env=env)
    assert usage.returncode == 2 and "-d" in usage.stderr
    bad_chunk = await tool("elastichosts-upload", "-c", "4Q", big, env=env)
    assert bad_chunk.returncode == 2 and "k, M, G or T" in bad_chunk.stderr


async def test_bad_auth_and_missing_drive_fail_at_once(account, tmp_path):
    source = tmp_path / "source"
    source.write_bytes(b"y" * 1000)
    bad = {**account.env(), "EHAUTH": f"{account.user}:nope"}
    up = await tool("elastichosts-upload", source, env=bad)
    assert up.returncode == 1 and "401 auth" in up.stderr and "retry" not in up.stderr
    down = await tool(
        "elastichosts-download", "00000000-0000-0000-0000-000000000000", tmp_path / "x", env=account.env()
    )
    assert down.returncode == 1 and "404 missing" in down.stderr and "retry" not in down.stderr
    assert not (tmp_path / "x").exists()


async def test_progress_bar_only_on_a_terminal(account, tmp_path):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(2 * MiB))
    leader, follower = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "elastichosts-upload"),
            "-c",
            "256k",
            str(source),
            env=account.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=follower,
            stdin=asyncio.subprocess.DEVNULL,
        )
        os.close(follower)
        # Read the terminal while the tool writes to it, so a full terminal buffer never stalls it.
        screen_reader = asyncio.ensure_future(asyncio.to_thread(read_terminal, leader))
        out, _ = await process.communicate()
        assert process.returncode == 0
        screen = await screen_reader
    finally:
        os.close(leader)
    final = screen.decode().replace("\r\n", "\n").split("\r")[-1]
    assert final.startswith("upload [") and "100% 2.0 MiB/2.0 MiB" in final and "ETA 0:00" in final
    assert "Created drive" in out.decode() and "Created drive" not in screen.decode()


def read_terminal(fd: int) -> bytes:
    screen = b""
    with contextlib.suppress(OSError):  # EIO once the terminal's last writer has gone
        while chunk := os.read(fd, 65536):
            screen += chunk
    return screen
