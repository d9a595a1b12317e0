"""Internal qcow2 snapshots of drives (plain and LUKS-encrypted, cloned from a standard image's base)
made, applied and deleted with qemu-img, and templates: a drive's bytes (now or at a snapshot)
flattened into a read-only base that new drives overlay, byte for byte, and that cannot be removed
while a drive uses it."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid

import pytest

from elastic_api.errors import BusyError, FailedError
from elastic_api.storage import BaseFile, Volume
from elastic_api.storage.bases import _backing_file
from tests.storage.conftest import MiB, body, mixed, read_all

IMAGE = "5e1f0a2b-8a37-4c1d-9d2b-3b2f0f1e5c22"
SECRET = b"s" * 32
LAYOUTS = ("qcow2", "qcow2-luks")


def _volume(layout: str, size: int) -> Volume:
    fmt = "raw" if layout == "raw" else "qcow2"
    return Volume(str(uuid.uuid4()), fmt, size, SECRET if layout == "qcow2-luks" else None)


def _ignore(done: int, total: int) -> None:
    pass


async def _cloned_drive(pool, tmp_path, layout):
    data = mixed(2 * MiB + 100, seed=3)
    raw = tmp_path / "image.raw"
    raw.write_bytes(data)
    stored = await pool.import_image(IMAGE, raw)
    drive = _volume(layout, 4 * MiB)
    await pool.create(drive)
    await pool.copy(stored, drive, "gunzip", _ignore)
    return drive, data + bytes(4 * MiB - len(data))


async def _write(pool, drive, offset, data):
    await pool.write(drive, offset, body(data), gzip=False, max_decompressed=64 * MiB)


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_snapshot_is_made_applied_and_deleted(pool, tmp_path, layout):
    drive, before = await _cloned_drive(pool, tmp_path, layout)
    await _write(pool, drive, 4096, b"first" * 1000)
    at_snapshot = bytearray(before)
    at_snapshot[4096 : 4096 + 5000] = b"first" * 1000
    await pool.snapshot(drive, "create", "elastic-snapshot-1")
    await _write(pool, drive, 0, b"later" * 3000)
    await _write(pool, drive, 3 * MiB, b"tail")
    assert (await read_all(pool, drive))[:5] == b"later"
    await pool.snapshot(drive, "apply", "elastic-snapshot-1")
    assert await read_all(pool, drive) == bytes(at_snapshot)
    # Applied twice is applied once (a rollback re-run after a restart).
    await pool.snapshot(drive, "apply", "elastic-snapshot-1")
    assert await read_all(pool, drive) == bytes(at_snapshot)
    # Still an overlay of the image's base, with the snapshot listed in the file.
    assert _backing_file(pool.path(drive)) == os.fsencode(str(pool.base_path(IMAGE)))
    await pool.snapshot(drive, "delete", "elastic-snapshot-1")
    with pytest.raises(FailedError):
        await pool.snapshot(drive, "apply", "elastic-snapshot-1")
    assert await read_all(pool, drive) == bytes(at_snapshot)
    await pool.close()
    if layout == "qcow2-luks":
        assert b"first" * 20 not in pool.path(drive).read_bytes()  # the snapshot's clusters stay encrypted
    else:
        subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(pool.path(drive))], check=True)


async def test_a_raw_drive_takes_no_snapshot(pool):
    drive = Volume(str(uuid.uuid4()), "raw", MiB)
    await pool.create(drive)
    with pytest.raises(FailedError):
        await pool.snapshot(drive, "create", "elastic-snapshot-1")


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_template_holds_the_drives_bytes_and_new_drives_overlay_it(pool, tmp_path, layout):
    drive, before = await _cloned_drive(pool, tmp_path, layout)
    await _write(pool, drive, 8192, b"then" * 500)
    then = bytearray(before)
    then[8192 : 8192 + 2000] = b"then" * 500
    await pool.snapshot(drive, "create", "elastic-snapshot-7")
    await _write(pool, drive, 8192, b"now!" * 500)
    now = bytearray(then)
    now[8192 : 8192 + 2000] = b"now!" * 500
    current, earlier = str(uuid.uuid4()), str(uuid.uuid4())
    assert await pool.make_template(drive, current, None) == 4 * MiB
    assert await pool.make_template(drive, earlier, "elastic-snapshot-7") == 4 * MiB
    base = pool.base_path(current)
    assert base.read_bytes() == bytes(now) and pool.base_path(earlier).read_bytes() == bytes(then)
    assert stat.S_IMODE(base.stat().st_mode) == 0o400
    assert not [name for name in os.listdir(base.parent) if name.startswith(".")]  # no temporary left
    # A drive made from the template: an overlay of its base, reading its bytes, then zeros.
    for target_layout in LAYOUTS:
        made = _volume(target_layout, 6 * MiB)
        await pool.create(made)
        await pool.copy(BaseFile(current, 4 * MiB), made, "gunzip", _ignore)
        assert await read_all(pool, made) == bytes(now) + bytes(2 * MiB)
        assert _backing_file(pool.path(made)) == os.fsencode(str(base))
    assert len(await pool.image_users(current)) == 2
    with pytest.raises(BusyError):
        await pool.remove_template(current)
    assert base.exists()
    await pool.remove_template(earlier)
    assert not pool.base_path(earlier).exists()
    await pool.remove_template(earlier)  # already gone: fine


async def test_a_template_too_big_for_the_drive_is_refused(pool, tmp_path):
    drive, _ = await _cloned_drive(pool, tmp_path, "qcow2")
    template = str(uuid.uuid4())
    await pool.make_template(drive, template, None)
    small = _volume("qcow2", 2 * MiB)
    await pool.create(small)
    from elastic_api.errors import FullError

    with pytest.raises(FullError):
        await pool.copy(BaseFile(template, 4 * MiB), small, "", _ignore)
