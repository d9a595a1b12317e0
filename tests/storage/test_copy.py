"""Imaging: copy between formats, gzip and gunzip on the way, standard images as sources."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from elastic_api.errors import FullError, UsageError
from elastic_api.storage import ImageFile, Volume
from tests.storage.conftest import FORMATS, MiB, allocated, body, mixed, qemu_check, qemu_raw, read_all, upload

PAIRS = [(source, target) for source in FORMATS for target in FORMATS]


class Progress:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done, total):
        self.calls.append((done, total))

    def check(self, total):
        assert len(self.calls) >= 3
        assert all(t == total for _, t in self.calls)
        done = [d for d, _ in self.calls]
        assert done == sorted(done) and done[0] == 0 and done[-1] == total


async def filled(make_volume, pool, fmt, size, data):
    volume = await make_volume(fmt, size)
    await upload(pool, volume, data, 4 * MiB, gzipped=False)
    return volume


@pytest.mark.parametrize("source_format, target_format", PAIRS)
async def test_copy_between_formats(pool, make_volume, tmp_path, source_format, target_format):
    data = mixed(6 * MiB + 5, seed=21)
    source = await filled(make_volume, pool, source_format, 6 * MiB + 5, data)
    target = await filled(make_volume, pool, target_format, 9 * MiB, os.urandom(9 * MiB))  # old bytes go
    progress = Progress()
    await pool.copy(source, target, "", progress)
    progress.check(source.size)
    expected = data + bytes(target.size - len(data))
    assert await read_all(pool, target) == expected
    await pool.close()
    if target_format == "qcow2":
        qemu_check(pool.path(target))
    assert qemu_raw(pool.path(target), target_format, tmp_path)[: target.size] == expected
    assert await read_all(pool, source) == data  # the source is untouched


@pytest.mark.parametrize("target_format", FORMATS)
async def test_zero_blocks_stay_holes(pool, make_volume, target_format):
    source = await filled(make_volume, pool, "raw", 32 * MiB, os.urandom(MiB) + bytes(30 * MiB) + os.urandom(MiB))
    target = await filled(make_volume, pool, target_format, 32 * MiB, os.urandom(32 * MiB))
    await pool.copy(source, target, "", Progress())
    await pool.close()
    assert allocated(pool.path(target)) < 3 * MiB


@pytest.mark.parametrize("source_format, target_format", PAIRS)
async def test_gzip_then_gunzip(pool, make_volume, source_format, target_format):
    data = mixed(5 * MiB, seed=22)
    source = await filled(make_volume, pool, source_format, 5 * MiB, data)
    packed = await filled(make_volume, pool, target_format, 5 * MiB, os.urandom(5 * MiB))
    progress = Progress()
    await pool.copy(source, packed, "gzip", progress)
    progress.check(source.size)
    stream = await read_all(pool, packed)
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(stream) == data and inflater.eof
    assert inflater.unused_data == bytes(len(inflater.unused_data))  # then zeros, old bytes gone

    unpacked = await filled(make_volume, pool, source_format, 8 * MiB, os.urandom(8 * MiB))
    progress = Progress()
    await pool.copy(packed, unpacked, "gunzip", progress)  # the zeros after the stream are not gzip: fine
    assert progress.calls[-1] == (packed.size, packed.size)
    assert await read_all(pool, unpacked) == data + bytes(3 * MiB)


async def test_gunzip_of_concatenated_members_on_a_drive(pool, make_volume):
    parts = [os.urandom(MiB), bytes(2 * MiB), b"tail"]
    stream = b"".join(gzip.compress(part) for part in parts)
    source = await filled(make_volume, pool, "qcow2", 4 * MiB, stream)
    target = await make_volume("raw", 4 * MiB)
    await pool.copy(source, target, "gunzip", Progress())
    assert (await read_all(pool, target))[: 3 * MiB + 4] == b"".join(parts)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_gunzip_of_something_else_fails(pool, make_volume, fmt):
    source = await filled(make_volume, pool, fmt, MiB, b"not gzip at all")
    target = await make_volume("raw", MiB)
    with pytest.raises(UsageError, match="gzip"):
        await pool.copy(source, target, "gunzip", Progress())
    empty = await make_volume(fmt, MiB)
    with pytest.raises(UsageError, match="gzip"):
        await pool.copy(empty, target, "gunzip", Progress())


@pytest.mark.parametrize("target_format", FORMATS)
async def test_a_source_bigger_than_the_target_fails_before_changing_it(pool, make_volume, target_format):
    source = await filled(make_volume, pool, "raw", 4 * MiB, os.urandom(4 * MiB))
    old = os.urandom(3 * MiB)
    target = await filled(make_volume, pool, target_format, 3 * MiB, old)
    with pytest.raises(FullError):
        await pool.copy(source, target, "", Progress())
    assert await read_all(pool, target) == old


@pytest.mark.parametrize("target_format", FORMATS)
async def test_output_that_turns_out_too_big_fails(pool, make_volume, target_format):
    source = await filled(make_volume, pool, "raw", 4 * MiB, os.urandom(4 * MiB))
    target = await make_volume(target_format, 2 * MiB)
    with pytest.raises(FullError):
        await pool.copy(source, target, "gzip", Progress())  # random data does not shrink
    bomb = await filled(make_volume, pool, "raw", MiB, gzip.compress(bytes(64 * MiB)))
    with pytest.raises(FullError):
        await pool.copy(bomb, target, "gunzip", Progress())


async def test_bad_conversions_and_self_copies(pool, make_volume):
    volume = await make_volume("raw", MiB)
    other = await make_volume("raw", MiB)
    with pytest.raises(UsageError):
        await pool.copy(volume, other, "bzip2", Progress())
    with pytest.raises(UsageError):
        await pool.copy(volume, Volume(volume.drive, "raw", MiB), "", Progress())
    with pytest.raises(UsageError):
        await pool.copy(volume, Volume("../x", "raw", MiB), "", Progress())


# Standard images as sources.


@pytest.fixture
async def image(pool, tmp_path):
    data = mixed(3 * MiB + 17, seed=23)
    raw = tmp_path / "debian.raw"
    raw.write_bytes(data)
    stored = await pool.import_image("e6111e4c-67af-4438-b1bc-189747d5a8e5", raw)
    return stored, data


@pytest.mark.parametrize("target_format", FORMATS)
async def test_image_gunzip_into_a_drive(pool, make_volume, image, target_format):
    stored, data = image
    target = await filled(make_volume, pool, target_format, 4 * MiB, os.urandom(4 * MiB))
    progress = Progress()
    await pool.copy(stored, target, "gunzip", progress)
    compressed = stored.path.stat().st_size
    progress.check(compressed)
    assert await read_all(pool, target) == data + bytes(4 * MiB - len(data))


async def test_image_bytes_are_its_gzip_stream(pool, make_volume, image):
    stored, data = image
    target = await make_volume("raw", 4 * MiB)
    await pool.copy(stored, target, "", Progress())
    stream = stored.path.read_bytes()
    assert (await read_all(pool, target))[: len(stream)] == stream
    again = await make_volume("raw", 4 * MiB)
    await pool.copy(stored, again, "gzip", Progress())
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(await read_all(pool, again)) == stream and inflater.eof


@pytest.mark.parametrize("target_format", FORMATS)
async def test_an_image_too_big_for_the_drive_fails_before_changing_it(pool, make_volume, image, target_format):
    stored, _ = image
    old = os.urandom(2 * MiB)
    target = await filled(make_volume, pool, target_format, 2 * MiB, old)
    with pytest.raises(FullError):
        await pool.copy(stored, target, "gunzip", Progress())
    assert await read_all(pool, target) == old


async def test_a_missing_image_source(pool, make_volume):
    from elastic_api.errors import MissingError

    target = await make_volume("raw", MiB)
    ghost = ImageFile("0e5e5c8a-1f0e-4b8e-9f2c-7d1d3d0c9b01", pool.images_dir / "x.gz", 10)
    with pytest.raises(MissingError):
        await pool.copy(ghost, target, "gunzip", Progress())


async def test_writes_after_imaging_go_to_the_new_image(pool, make_volume):
    # A qcow2 target is replaced by a fresh file: its export must serve the new one afterwards.
    source = await filled(make_volume, pool, "raw", 2 * MiB, os.urandom(2 * MiB))
    target = await filled(make_volume, pool, "qcow2", 2 * MiB, os.urandom(2 * MiB))
    await pool.copy(source, target, "", Progress())
    await pool.write(target, 0, body(b"after"), gzip=False, max_decompressed=MiB)
    expected = b"after" + (await read_all(pool, source))[5:]
    assert await read_all(pool, target) == expected
    await pool.close()
    qemu_check(pool.path(target))
