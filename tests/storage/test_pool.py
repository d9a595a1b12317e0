"""The pool's volumes: create, write, read, resize, destroy, raw and qcow2, against real files and qemu."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import tracemalloc
import uuid

import pytest

from elastic_api.errors import ElasticError, FailedError, FullError, TooLargeError, UsageError
from elastic_api.storage import Pool, Volume
from elastic_api.storage.fileops import FileOps
from tests.storage.conftest import FORMATS, KiB, MiB, allocated, body, mixed, qemu_check, qemu_raw, read_all, upload


async def test_create_makes_a_sparse_file_named_by_uuid(pool, make_volume):
    raw = await make_volume("raw", 64 * MiB)
    path = pool.path(raw)
    assert path == pool.pool_dir / f"{raw.drive}.raw"
    assert path.stat().st_size == 64 * MiB and allocated(path) == 0
    qcow2 = await make_volume("qcow2", 64 * MiB)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", "qcow2", str(pool.path(qcow2))], capture_output=True, check=True
        ).stdout
    )
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 * MiB
    assert allocated(pool.path(qcow2)) < MiB
    assert await pool.volumes() == {raw.drive, qcow2.drive}


@pytest.mark.parametrize(
    "drive, fmt",
    [
        ("../../etc/passwd", "raw"),
        ("not-a-uuid", "raw"),
        (str(uuid.uuid4()).upper(), "raw"),
        (str(uuid.uuid4()), "vmdk"),
        (str(uuid.uuid4()) + "/x", "raw"),
    ],
)
async def test_paths_are_built_from_valid_uuids_only(pool, drive, fmt):
    volume = Volume(drive, fmt, MiB)
    with pytest.raises(UsageError):
        pool.path(volume)
    with pytest.raises(UsageError):
        await pool.create(volume)
    with pytest.raises(UsageError):
        await pool.write(volume, 0, body(b"x"), gzip=False, max_decompressed=MiB)
    with pytest.raises(UsageError):
        pool.read(volume, 0, 1)
    assert os.listdir(pool.pool_dir) == []


@pytest.mark.parametrize("fmt", FORMATS)
async def test_create_twice_fails(make_volume, pool, fmt):
    volume = await make_volume(fmt)
    with pytest.raises(FailedError) as e:
        await pool.create(volume)
    assert str(pool.pool_dir) not in e.value.message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1 * MiB, 4 * MiB, 5 * MiB])
async def test_upload_round_trip(pool, make_volume, tmp_path, fmt, chunk):
    size = 12 * MiB + 3 * KiB  # not a whole number of chunks or blocks
    volume = await make_volume(fmt, size)
    data = mixed(size - 1234, seed=chunk)
    await upload(pool, volume, data, chunk, offset=1234)
    expected = bytes(1234) + data
    assert await read_all(pool, volume) == expected
    await pool.close()
    if fmt == "qcow2":
        qemu_check(pool.path(volume))
    assert qemu_raw(pool.path(volume), fmt, tmp_path)[:size] == expected


@pytest.mark.parametrize("fmt", FORMATS)
async def test_reads_at_any_offset_and_length(pool, make_volume, fmt):
    volume = await make_volume(fmt, 6 * MiB)
    data = mixed(6 * MiB, seed=2)
    await upload(pool, volume, data, 4 * MiB)
    for offset, length in [
        (0, 1),
        (1, 4095),
        (4095, 2),
        (MiB - 1, MiB + 2),
        (5 * MiB + 1, MiB - 1),
        (123_457, 3 * MiB + 11),
        (6 * MiB - 1, 1),
    ]:
        pieces = [piece async for piece in pool.read(volume, offset, length)]
        assert all(len(piece) <= MiB for piece in pieces)
        assert b"".join(pieces) == data[offset : offset + length]
    # A length running past the end stops at the end.
    assert await read_all(pool, volume, 6 * MiB - 10, 100) == data[-10:]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_holes_read_as_zeros(pool, make_volume, fmt):
    volume = await make_volume(fmt, 8 * MiB + 100)
    assert await read_all(pool, volume) == bytes(8 * MiB + 100)
    await pool.write(volume, 3 * MiB + 5, body(b"island"), gzip=False, max_decompressed=MiB)
    got = await read_all(pool, volume, 3 * MiB, 2 * MiB)
    assert got == bytes(5) + b"island" + bytes(2 * MiB - 11)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_rewriting_a_chunk_is_harmless(pool, make_volume, fmt):
    volume = await make_volume(fmt, 8 * MiB)
    data = mixed(8 * MiB, seed=4)
    await upload(pool, volume, data[: 4 * MiB], 4 * MiB)
    # A resumed upload sends its last chunk again, then the rest.
    await upload(pool, volume, data, 4 * MiB)
    await upload(pool, volume, data[4 * MiB :], 4 * MiB, offset=4 * MiB)
    assert await read_all(pool, volume) == data


@pytest.mark.parametrize("fmt", FORMATS)
async def test_raw_and_gzip_bodies(pool, make_volume, fmt):
    volume = await make_volume(fmt, 4 * MiB)
    plain = os.urandom(MiB + 7)
    assert await pool.write(volume, 10, body(plain), gzip=False, max_decompressed=4 * MiB) == len(plain)
    assert await pool.write(
        volume, 2 * MiB, body(gzip.compress(plain), 1000), gzip=True, max_decompressed=4 * MiB
    ) == len(plain)
    assert await pool.write(volume, 0, body(b""), gzip=False, max_decompressed=MiB) == 0
    got = await read_all(pool, volume)
    assert got[10 : 10 + len(plain)] == plain and got[2 * MiB : 2 * MiB + len(plain)] == plain


@pytest.mark.parametrize("fmt", FORMATS)
async def test_zero_chunks_over_old_data_read_as_zeros_and_free_it(pool, make_volume, tmp_path, fmt):
    volume = await make_volume(fmt, 8 * MiB)
    await upload(pool, volume, os.urandom(8 * MiB), 4 * MiB)
    full = allocated(pool.path(volume))
    await upload(pool, volume, bytes(8 * MiB), 4 * MiB)
    assert await read_all(pool, volume) == bytes(8 * MiB)
    await pool.close()
    if fmt == "raw":
        assert allocated(pool.path(volume)) < MiB < full
    else:
        qemu_check(pool.path(volume))
        assert not any(extent["data"] for extent in qemu_map(pool.path(volume)))


def qemu_map(path):
    return json.loads(
        subprocess.run(
            ["qemu-img", "map", "--output=json", "-f", "qcow2", str(path)], capture_output=True, check=True
        ).stdout
    )


@pytest.mark.parametrize("fmt", FORMATS)
async def test_zero_blocks_stay_holes(pool, make_volume, fmt):
    volume = await make_volume(fmt, 16 * MiB)
    data = os.urandom(MiB) + bytes(6 * MiB) + os.urandom(MiB)
    await upload(pool, volume, data, 8 * MiB)
    await pool.close()
    if fmt == "raw":
        assert 2 * MiB <= allocated(pool.path(volume)) < 3 * MiB
    else:
        mapped = sum(extent["length"] for extent in qemu_map(pool.path(volume)) if extent["data"])
        assert mapped == 2 * MiB


@pytest.mark.slow
async def test_a_gigabyte_of_zeros_allocates_next_to_nothing(pool, make_volume):
    volume = await make_volume("raw", 1024 * MiB)
    member = gzip.compress(bytes(64 * MiB), 1)
    stream = member * 16  # concatenated members: 1 GiB inflated, one write
    written = await pool.write(volume, 0, body(stream), gzip=True, max_decompressed=2048 * MiB)
    assert written == 1024 * MiB
    assert allocated(pool.path(volume)) < MiB
    assert [name for name in os.listdir(pool.pool_dir)] == [f"{volume.drive}.raw"]  # no spill left


@pytest.mark.parametrize("fmt", FORMATS)
async def test_concurrent_writes_to_one_drive(pool, make_volume, fmt):
    volume = await make_volume(fmt, 16 * MiB)
    data = mixed(16 * MiB, seed=7)
    pieces = [(start, data[start : start + MiB + 5]) for start in range(0, 16 * MiB, MiB + 5)]
    results = await asyncio.gather(
        *(
            pool.write(volume, start, body(gzip.compress(piece, 1)), gzip=True, max_decompressed=4 * MiB)
            for start, piece in pieces
        )
    )
    assert results == [len(piece) for _, piece in pieces]
    assert await read_all(pool, volume) == data


# Nothing is written when the write is refused.


async def snapshot(pool, volume):
    return await read_all(pool, volume), allocated(pool.path(volume))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("gzipped", [True, False])
async def test_a_write_past_the_end_writes_nothing(pool, make_volume, fmt, gzipped):
    volume = await make_volume(fmt, 4 * MiB)
    await upload(pool, volume, mixed(4 * MiB, seed=5), MiB)
    before = await snapshot(pool, volume)
    data = os.urandom(MiB + 1)
    sent = gzip.compress(data) if gzipped else data
    with pytest.raises(FullError):
        await pool.write(volume, 3 * MiB, body(sent), gzip=gzipped, max_decompressed=64 * MiB)
    with pytest.raises(FullError):
        await pool.write(volume, 4 * MiB + 1, body(b""), gzip=False, max_decompressed=64 * MiB)
    assert await snapshot(pool, volume) == before
    # Exactly up to the end is fine.
    assert await pool.write(volume, 3 * MiB - 1, body(data), gzip=False, max_decompressed=64 * MiB) == MiB + 1


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_gzip_bomb_is_refused_with_flat_memory(pool, make_volume, fmt):
    volume = await make_volume(fmt, 64 * MiB)  # room for 64 MiB: the cap must stop the bomb first
    await upload(pool, volume, mixed(4 * MiB, seed=6), 4 * MiB)
    before = await snapshot(pool, volume)
    member = gzip.compress(bytes(64 * MiB), 9)
    bomb = member * 32  # 2 GiB of zeros in about 2 MB
    assert len(bomb) < 4 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError):
            await pool.write(volume, 0, body(bomb), gzip=True, max_decompressed=16 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * MiB
    assert await snapshot(pool, volume) == before


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_bomb_bigger_than_the_drive_stops_at_its_end(pool, make_volume, fmt):
    volume = await make_volume(fmt, 8 * MiB)
    before = await snapshot(pool, volume)
    bomb = gzip.compress(bytes(64 * MiB), 9) * 32
    with pytest.raises(FullError):
        await pool.write(volume, 0, body(bomb), gzip=True, max_decompressed=4096 * MiB)
    assert await snapshot(pool, volume) == before


def truncated(data):
    return gzip.compress(data)[:-5]


def trailing(data):
    return gzip.compress(data) + b"trailing garbage"


def corrupt(data):
    stream = bytearray(gzip.compress(data))
    stream[len(stream) // 2] ^= 0x55
    return bytes(stream)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("malform", [truncated, trailing, corrupt, lambda data: data, lambda data: b""])
@pytest.mark.parametrize("size", [MiB, 10 * MiB])  # in memory, and spilled past the buffer
async def test_malformed_gzip_writes_nothing(tmp_path, fmt, malform, size):
    pool = Pool(tmp_path / "pool", tmp_path / "images", buffer=2 * MiB)
    try:
        volume = Volume(str(uuid.uuid4()), fmt, 16 * MiB)
        await pool.create(volume)
        await upload(pool, volume, mixed(16 * MiB, seed=8), 4 * MiB)
        before = await snapshot(pool, volume)
        with pytest.raises(UsageError) as e:
            await pool.write(volume, 0, body(malform(os.urandom(size))), gzip=True, max_decompressed=64 * MiB)
        assert "Traceback" not in e.value.message and str(tmp_path) not in e.value.message
        assert await snapshot(pool, volume) == before
        assert sorted(os.listdir(pool.pool_dir)) == [f"{volume.drive}.{fmt}"]  # no spill file left
    finally:
        await pool.close()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_bodies_larger_than_the_buffer_spill_and_arrive_whole(tmp_path, fmt):
    pool = Pool(tmp_path / "pool", tmp_path / "images", buffer=MiB)
    try:
        volume = Volume(str(uuid.uuid4()), fmt, 24 * MiB)
        await pool.create(volume)
        await upload(pool, volume, os.urandom(24 * MiB), 8 * MiB)  # old data under the new zeros
        data = mixed(20 * MiB - 777, seed=9)
        assert await pool.write(volume, 777, body(gzip.compress(data, 1)), gzip=True, max_decompressed=64 * MiB) == len(
            data
        )
        got = await read_all(pool, volume)
        assert got[777 : 777 + len(data)] == data
        await pool.close()
        if fmt == "qcow2":
            qemu_check(pool.path(volume))
        assert qemu_raw(pool.path(volume), fmt, tmp_path)[777 : 777 + len(data)] == data
    finally:
        await pool.close()


async def test_writes_are_synced_before_they_return(pool, make_volume, monkeypatch):
    volume = await make_volume("raw", MiB)
    synced = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    await pool.write(volume, 0, body(b"durable"), gzip=False, max_decompressed=MiB)
    assert synced


# Out of room.


def no_room(*args):
    raise FullError("the drive pool has no room for this write")


async def test_out_of_room_while_reserving_leaves_the_raw_drive_as_it_was(pool, make_volume, monkeypatch):
    volume = await make_volume("raw", 8 * MiB)
    await upload(pool, volume, mixed(4 * MiB, seed=10), 4 * MiB)
    before = await snapshot(pool, volume)
    monkeypatch.setattr(FileOps, "reserve", lambda self, fd, offset, length: no_room())
    with pytest.raises(FullError):
        await pool.write(volume, 2 * MiB, body(os.urandom(4 * MiB)), gzip=False, max_decompressed=64 * MiB)
    assert await snapshot(pool, volume) == before


@pytest.fixture
def small_fs(tmp_path):
    """A real 16 MiB tmpfs, so ENOSPC comes from the kernel; skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_full_file_system_leaves_the_drive_as_it_was(small_fs, fmt):
    pool = Pool(small_fs / "pool", small_fs / "images", buffer=8 * MiB)
    try:
        volume = Volume(str(uuid.uuid4()), fmt, 64 * MiB)  # sparse: bigger than the file system
        await pool.create(volume)
        await upload(pool, volume, os.urandom(12 * MiB), 4 * MiB)  # about 4 MiB left
        before = await snapshot(pool, volume)
        for size in (6 * MiB, 20 * MiB):  # held in memory, then spilled
            with pytest.raises(FullError):
                await pool.write(volume, 16 * MiB, body(os.urandom(size)), gzip=False, max_decompressed=64 * MiB)
            assert await snapshot(pool, volume) == before
        assert os.listdir(pool.pool_dir) == [f"{volume.drive}.{fmt}"]
        # Zeros need no room, wherever they go.
        assert (
            await pool.write(
                volume, 32 * MiB, body(gzip.compress(bytes(16 * MiB))), gzip=True, max_decompressed=64 * MiB
            )
            == 16 * MiB
        )
        if fmt == "raw":  # rewriting blocks that are already allocated needs no room either
            data = os.urandom(4 * MiB)
            assert await pool.write(volume, 0, body(data), gzip=False, max_decompressed=64 * MiB) == 4 * MiB
            assert await read_all(pool, volume, 0, 4 * MiB) == data
        await pool.close()
        if fmt == "qcow2":
            qemu_check(pool.path(volume))
    finally:
        await pool.close()


async def test_no_room_in_a_qcow2_drive_is_found_before_writing(pool, make_volume, monkeypatch):
    volume = await make_volume("qcow2", 8 * MiB)
    await upload(pool, volume, mixed(4 * MiB, seed=12), 4 * MiB)
    before = await snapshot(pool, volume)
    real = os.statvfs

    class Tiny:
        def __init__(self, path):
            self.f_frsize, self.f_bavail = real(path).f_frsize, 1

    monkeypatch.setattr(os, "statvfs", Tiny)
    with pytest.raises(FullError):
        await pool.write(volume, 0, body(os.urandom(MiB)), gzip=False, max_decompressed=64 * MiB)
    # All zeros need no room.
    assert await pool.write(volume, 0, body(bytes(MiB)), gzip=False, max_decompressed=64 * MiB) == MiB
    monkeypatch.undo()
    assert await read_all(pool, volume) == bytes(MiB) + before[0][MiB:]


# Resize and destroy.


@pytest.mark.parametrize("fmt", FORMATS)
async def test_resize_grows_with_zeros(pool, make_volume, tmp_path, fmt):
    volume = await make_volume(fmt, 4 * MiB)
    data = os.urandom(4 * MiB)
    await upload(pool, volume, data, 4 * MiB)  # a qcow2 export is running now
    await pool.resize(volume, 10 * MiB + 512)
    grown = Volume(volume.drive, fmt, 10 * MiB + 512)
    assert await read_all(pool, grown) == data + bytes(6 * MiB + 512)
    await pool.write(grown, 10 * MiB, body(b"z" * 512), gzip=False, max_decompressed=MiB)
    await pool.close()
    assert qemu_raw(pool.path(volume), fmt, tmp_path) == data + bytes(6 * MiB) + b"z" * 512
    with pytest.raises(UsageError):
        await pool.resize(grown, MiB)
    await pool.resize(grown, grown.size)  # no change


@pytest.mark.parametrize("fmt", FORMATS)
async def test_destroy(pool, make_volume, fmt):
    volume = await make_volume(fmt)
    other = await make_volume(fmt)
    await upload(pool, volume, b"x" * MiB, MiB)
    await pool.destroy(volume)
    assert not pool.path(volume).exists() and volume.drive not in pool.exports()
    assert await pool.volumes() == {other.drive}
    await pool.destroy(volume)  # already gone: fine
    with pytest.raises(FailedError):
        await read_all(pool, volume)


async def test_error_messages_never_name_paths(pool):
    volume = Volume(str(uuid.uuid4()), "raw", MiB)  # never created
    for call in (
        lambda: read_all(pool, volume),
        lambda: pool.resize(volume, 2 * MiB),
        lambda: pool.write(volume, 0, body(b"x"), gzip=False, max_decompressed=MiB),
    ):
        with pytest.raises(ElasticError) as e:
            await call()
        assert str(pool.pool_dir) not in e.value.message and volume.drive not in e.value.message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [MiB, 12 * MiB])  # in memory, and spilled
async def test_a_write_cancelled_mid_body_writes_nothing(pool, make_volume, fmt, size):
    volume = await make_volume(fmt, 16 * MiB)
    await upload(pool, volume, mixed(16 * MiB, seed=13), 4 * MiB)
    before = await snapshot(pool, volume)
    sent = asyncio.Event()

    async def stalled():  # a client that sends part of its body, then goes quiet
        yield os.urandom(size)
        sent.set()
        await asyncio.Event().wait()

    writing = asyncio.ensure_future(pool.write(volume, 0, stalled(), gzip=False, max_decompressed=64 * MiB))
    await sent.wait()
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert await snapshot(pool, volume) == before
