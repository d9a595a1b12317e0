"""qcow2 exports: one qemu-storage-daemon per drive while in use, stopped when idle, destroyed or closed."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from elastic_api.errors import FailedError
from elastic_api.storage import Pool, Volume
from elastic_api.storage.exports import qemu_escape
from tests.storage.conftest import MiB, body, read_all, upload


async def until(condition, timeout=60.0):
    """Wait for a condition the code under test makes true by itself (a timer, a process exit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def daemons(pool):
    return {drive: export.processes[0] for drive, export in pool._exports._exports.items()}


async def test_an_export_lives_while_used_and_stops_when_idle(pool, make_volume):
    volume = await make_volume("qcow2", 4 * MiB)
    reading = pool.read(volume, 0, 4 * MiB)
    assert len(await anext(reading)) == MiB
    assert pool.exports() == {volume.drive}
    process = daemons(pool)[volume.drive]
    await upload(pool, volume, os.urandom(MiB), MiB)  # shares the running export
    assert daemons(pool)[volume.drive] is process
    async for _ in reading:
        pass
    await until(lambda: not pool.exports())  # export_idle is 0.2 s in the fixture
    assert process.returncode == 0  # stopped cleanly by SIGTERM
    assert sorted(os.listdir(pool.pool_dir)) == [f"{volume.drive}.qcow2"]  # no socket left behind


async def test_one_export_per_drive(pool, make_volume):
    volumes = [await make_volume("qcow2", MiB) for _ in range(3)]
    await asyncio.gather(*(upload(pool, v, os.urandom(MiB), MiB) for v in volumes for _ in range(2)))
    assert pool.exports() == {v.drive for v in volumes}
    assert len({p.pid for p in daemons(pool).values()}) == 3
    await pool.close()
    assert not pool.exports()


async def test_destroy_stops_the_export_even_mid_read(pool, make_volume):
    volume = await make_volume("qcow2", 8 * MiB)
    reading = pool.read(volume, 0, 8 * MiB)
    await anext(reading)
    await pool.destroy(volume)
    assert not pool.exports() and not pool.path(volume).exists()
    with pytest.raises(FailedError):
        async for _ in reading:
            pass


async def test_resize_waits_for_users_then_restarts_the_export(pool, make_volume):
    volume = await make_volume("qcow2", 4 * MiB)
    reading = pool.read(volume, 0, 4 * MiB)
    await anext(reading)
    resizing = asyncio.ensure_future(pool.resize(volume, 8 * MiB))
    await asyncio.sleep(0)
    assert not resizing.done()
    assert b"".join([piece async for piece in reading]) == bytes(3 * MiB)  # the read finishes undisturbed
    await resizing
    assert await read_all(pool, Volume(volume.drive, "qcow2", 8 * MiB)) == bytes(8 * MiB)


async def test_a_dead_daemon_is_replaced(pool, make_volume):
    volume = await make_volume("qcow2", 2 * MiB)
    await upload(pool, volume, b"a" * MiB, MiB)
    daemons(pool)[volume.drive].kill()
    await until(lambda: pool._exports._exports[volume.drive].client.closed)
    await upload(pool, volume, b"b" * MiB, MiB, offset=MiB)
    assert await read_all(pool, volume) == b"a" * MiB + b"b" * MiB


async def test_a_daemon_that_cannot_open_the_image(pool, make_volume):
    volume = await make_volume("qcow2", MiB)
    pool.path(volume).write_bytes(b"not a qcow2 image" * 100)
    with pytest.raises(FailedError) as e:
        await read_all(pool, volume)
    assert str(pool.pool_dir) not in e.value.message
    assert not pool.exports()
    assert sorted(os.listdir(pool.pool_dir)) == [f"{volume.drive}.qcow2"]


async def test_a_missing_daemon_binary(tmp_path):
    pool = Pool(tmp_path / "pool", tmp_path / "images", storage_daemon=str(tmp_path / "no-such-daemon"))
    volume = Volume(str(uuid.uuid4()), "qcow2", MiB)
    await pool.create(volume)
    with pytest.raises(FailedError):
        await pool.write(volume, 0, body(b"x"), gzip=False, max_decompressed=MiB)
    await pool.close()


async def test_a_pool_path_too_long_for_a_socket_address(tmp_path):
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    pool = Pool(deep / "pool", deep / "images")
    try:
        volume = Volume(str(uuid.uuid4()), "qcow2", MiB)
        await pool.create(volume)
        await pool.write(volume, 0, body(b"long path"), gzip=False, max_decompressed=MiB)
        assert (await read_all(pool, volume))[:9] == b"long path"
    finally:
        await pool.close()


async def test_commas_in_the_pool_path(tmp_path):
    pool = Pool(tmp_path / "a,b" / "pool", tmp_path / "images")
    try:
        volume = Volume(str(uuid.uuid4()), "qcow2", MiB)
        await pool.create(volume)
        await pool.write(volume, 0, body(b"comma"), gzip=False, max_decompressed=MiB)
        assert (await read_all(pool, volume))[:5] == b"comma"
    finally:
        await pool.close()
    assert qemu_escape("/x,y,,z") == "/x,,y,,,,z"


async def test_cancelled_users_leave_no_daemon(pool, make_volume):
    volume = await make_volume("qcow2", MiB)
    task = asyncio.ensure_future(read_all(pool, volume))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: not pool.exports())
