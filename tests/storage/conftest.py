"""Fixtures for the drive pool: a real Pool in tmp_path, real files and real qemu tools."""

from __future__ import annotations

import gzip
import random
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elastic_api.storage import Pool, Volume

KiB = 1 << 10
MiB = 1 << 20
FORMATS = ("raw", "qcow2")
LANES = 3


def mixed(size: int, seed: int = 1) -> bytes:
    """Random, text and zero regions of uneven, unaligned lengths: what a disk image looks like."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        kind, n = rng.randrange(3), rng.randrange(1, 768 * KiB)
        if kind == 0:
            out += rng.randbytes(n)
        elif kind == 1:
            out += (b"The quick brown fox %d jumps over the lazy dog.\n" % rng.randrange(10**6)) * (n // 48 + 1)
        else:
            out += bytes(n)
    return bytes(out[:size])


async def body(data: bytes, piece: int = 64 * KiB) -> AsyncIterator[bytes]:
    """A request body as aiohttp hands it over: a few KiB at a time."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def read_all(pool: Pool, volume: Volume, offset: int = 0, length: int | None = None) -> bytes:
    length = volume.size - offset if length is None else length
    return b"".join([piece async for piece in pool.read(volume, offset, length)])


async def upload(pool: Pool, volume: Volume, data: bytes, chunk: int, offset: int = 0, *, gzipped: bool = True) -> None:
    """What the upload tools do: each chunk gzipped on its own and written at its offset."""
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        sent = gzip.compress(piece, 1) if gzipped else piece
        written = await pool.write(volume, offset + start, body(sent), gzip=gzipped, max_decompressed=64 * MiB)
        assert written == len(piece)


def qemu_check(path: Path) -> None:
    result = subprocess.run(["qemu-img", "check", "-f", "qcow2", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def qemu_raw(path: Path, fmt: str, tmp_path: Path) -> bytes:
    """The guest bytes as qemu itself sees them."""
    out = tmp_path / f"converted-{uuid.uuid4()}.raw"
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out)], check=True)
    try:
        return out.read_bytes()
    finally:
        out.unlink()


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[Pool]:
    # Three lanes: encrypted raw volumes are striped over several daemons, unevenly many.
    pool = Pool(tmp_path / "pool", tmp_path / "images", export_idle=0.2, luks_lanes=LANES)
    yield pool
    await pool.close()


@pytest.fixture
def make_volume(pool: Pool):
    async def make(fmt: str = "raw", size: int = 8 * MiB) -> Volume:
        volume = Volume(str(uuid.uuid4()), fmt, size)
        await pool.create(volume)
        return volume

    return make
