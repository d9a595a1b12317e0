"""Raw clones on the file systems that decide their cost: a standard image gunzipped into a plain
raw drive whose pool is on XFS or Btrfs is a reflink of the image's base (the drive's blocks are
the base's blocks, nothing copied), on ext4 a copy of the base's data; both read as the image,
byte for byte, and the drive's writes never reach the base.

Each file system is a real one, made for the test in a sparse file and loop-mounted
(tests/loopfs.py): root only, skipped elsewhere with the reason, and run by scripts/test.sh."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from elastic_api.storage import Pool, Volume
from tests.loopfs import block_map, shared_blocks, is_mounted, loop_mounted, unavailable
from tests.storage.conftest import MiB, body, mixed, read_all

IMAGE = "3c1d5e0a-7b2f-4f8e-9a61-0d2e4b6c8f13"
# What each file system does with FICLONE: shares the base's extents, or refuses (then a copy).
HOW = {"xfs": "reflink", "btrfs": "reflink", "ext4": "copy"}
FS_SIZE = 512 * MiB  # sparse: the test writes a few MiB into it


@pytest.fixture(params=sorted(HOW))
def mounted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    fs = request.param
    reason = unavailable(fs)
    if reason:
        pytest.skip(f"a loop-mounted {fs}: {reason}")
    with loop_mounted(fs, tmp_path / fs, FS_SIZE) as mountpoint:
        yield fs, mountpoint
    assert not is_mounted(mountpoint)


@pytest.fixture
async def loop_pool(mounted: tuple[str, Path], tmp_path: Path) -> AsyncIterator[tuple[str, Pool]]:
    """A pool (drives and the images' bases) on the loop-mounted file system, closed before the
    file system is unmounted; the gzip library stays on the test's own directory."""
    fs, mountpoint = mounted
    pool = Pool(mountpoint / "pool", tmp_path / "images", export_idle=0.2)
    try:
        yield fs, pool
    finally:
        await pool.close()


def _ignore(done: int, total: int) -> None:
    pass


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_raw_clone_shares_the_bases_extents_where_the_file_system_can(loop_pool, tmp_path, caplog):
    fs, pool = loop_pool
    # Data, text and holes of uneven lengths, not a whole block: the base pads to a sector.
    data = mixed(6 * MiB + 517, seed=23)
    raw = tmp_path / "image.raw"
    raw.write_bytes(data)
    await pool.import_image(IMAGE, raw)
    base = pool.base_path(IMAGE)
    before = _digest(base)
    drive = Volume(str(uuid.uuid4()), "raw", 16 * MiB)
    await pool.create(drive)
    with caplog.at_level(logging.INFO, logger="elastic_api.storage.pool"):
        await pool.copy(await pool.image_file(IMAGE), drive, "gunzip", _ignore)
    # The path the pool took, as it logs it.
    taken = [r.getMessage() for r in caplog.records if "cloned from image" in r.getMessage()]
    assert taken == [f"drive {drive.drive} cloned from image {IMAGE} ({HOW[fs]})"], taken

    path = pool.path(drive)
    expected = data + bytes(16 * MiB - len(data))
    assert path.read_bytes() == expected
    assert await read_all(pool, drive) == expected
    block = os.statvfs(path).f_bsize  # filefrag's unit
    base_blocks, drive_blocks = block_map(base), block_map(path)
    # The base's whole blocks: its last, partial one may be rewritten when the drive's size is set
    # past it (Btrfs zeroes the rest of that block), the one block a reflink may copy.
    whole = {n: p for n, p in base_blocks.items() if n < base.stat().st_size // block}
    assert len(whole) > 2 * MiB // block, "the base has data blocks"
    if HOW[fs] == "reflink":
        # The very same blocks: the drive maps each of the base's blocks where the base does, and
        # the file system flags them shared. Nothing was copied.
        assert {n: drive_blocks.get(n) for n in whole} == whole
        assert whole.keys() <= shared_blocks(path)
    else:
        assert not set(drive_blocks.values()) & set(base_blocks.values())
        assert not shared_blocks(path)
        # Still no more than the base's data: its holes stay holes in the copy.
        assert drive_blocks.keys() == base_blocks.keys()

    # A write into the middle of the base's first data block: the drive's copy of it changes, the
    # base does not (on XFS and Btrfs the written block moves to a new place, copy-on-write).
    first = min(base_blocks)
    offset = first * block + 100
    patch = b"written by the drive " * 50
    await pool.write(drive, offset, body(patch), gzip=False, max_decompressed=64 * MiB)
    changed = bytearray(expected)
    changed[offset : offset + len(patch)] = patch
    assert await read_all(pool, drive) == bytes(changed)
    assert path.read_bytes() == bytes(changed)
    assert _digest(base) == before
    assert block_map(base) == base_blocks
    after = block_map(path)
    assert after[first] != base_blocks[first]
    if HOW[fs] == "reflink":
        # Only what was written moved; the rest is still the base's.
        untouched = {n: p for n, p in whole.items() if n * block >= offset + len(patch)}
        assert untouched and {n: after.get(n) for n in untouched} == untouched

    # A second clone of the same image still reads the image.
    other = Volume(str(uuid.uuid4()), "raw", 8 * MiB)
    await pool.create(other)
    await pool.copy(await pool.image_file(IMAGE), other, "gunzip", _ignore)
    assert pool.path(other).read_bytes() == data + bytes(8 * MiB - len(data))


def test_a_loop_mount_goes_even_when_its_user_fails(tmp_path):
    reason = unavailable("xfs")
    if reason:
        pytest.skip(f"a loop-mounted xfs: {reason}")
    with pytest.raises(RuntimeError, match="inside"), loop_mounted("xfs", tmp_path / "fs", FS_SIZE) as mountpoint:
        backing = str(tmp_path / "fs" / "fs.img")
        assert is_mounted(mountpoint) and backing in _loop_devices()
        (mountpoint / "open").write_bytes(b"x")
        raise RuntimeError("failed inside")
    assert not is_mounted(mountpoint)
    assert backing not in _loop_devices()
    assert not (tmp_path / "fs" / "fs.img").exists()


def _loop_devices() -> str:
    return subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True, text=True, check=True
    ).stdout
