"""Copy-on-write imaging: a standard image gunzipped into a drive makes it a clone of the image's
base (a qcow2 overlay, plain or with LUKS inside, or a reflink/copy for raw); its reads equal a
full copy's bytes, and its writes, resizes and reads go on working."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from elastic_api.errors import BusyError, FullError
from elastic_api.storage import Volume
from elastic_api.storage.bases import _backing_file
from tests.storage.conftest import MiB, body, mixed, read_all

IMAGE = "0a6fbb2e-8a37-4c1d-9d2b-3b2f0f1e5c11"
SECRET = b"k" * 32
LAYOUTS = ("raw", "qcow2", "qcow2-luks")


def _volume(layout: str, size: int) -> Volume:
    fmt = "raw" if layout == "raw" else "qcow2"
    return Volume(str(uuid.uuid4()), fmt, size, SECRET if layout == "qcow2-luks" else None)


def _ignore(done: int, total: int) -> None:
    pass


@pytest.fixture
async def image(pool, tmp_path):
    data = mixed(3 * MiB + 517, seed=7)  # not a whole sector: the base pads with zeros
    raw = tmp_path / "image.raw"
    raw.write_bytes(data)
    stored = await pool.import_image(IMAGE, raw)
    return stored, data


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_clone_reads_as_a_full_copy_byte_for_byte(pool, image, layout):
    stored, data = image
    clone = _volume(layout, 8 * MiB)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    # The old way: the image's bytes written into a drive and copied drive to drive, in full.
    source = Volume(str(uuid.uuid4()), "raw", 8 * MiB)
    await pool.create(source)
    await pool.write(source, 0, body(data), gzip=False, max_decompressed=64 * MiB)
    full = _volume(layout, 8 * MiB)
    await pool.create(full)
    await pool.copy(source, full, "", _ignore)
    expected = data + bytes(8 * MiB - len(data))
    assert await read_all(pool, clone) == expected
    assert await read_all(pool, full) == expected
    if layout != "raw":
        base = os.fsencode(str(pool.base_path(IMAGE)))
        assert _backing_file(pool.path(clone)) == base
        assert _backing_file(pool.path(full)) is None  # drive to drive (mutable) still copies
        assert await pool.image_users(IMAGE) == [clone.drive]
        info = subprocess.run(
            ["qemu-img", "info", "--output=json", "-U", str(pool.path(clone))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert '"backing-filename-format": "raw"' in info and '"virtual-size": 8388608' in info, info
        if layout == "qcow2":
            subprocess.run(["qemu-img", "check", "-q", "-U", "-f", "qcow2", str(pool.path(clone))], check=True)
    else:
        assert await pool.image_users(IMAGE) == []  # a reflink or a copy keeps no link


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_clone_is_written_resized_and_read(pool, image, layout):
    stored, data = image
    clone = _volume(layout, 4 * MiB)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    # A write inside one of the base's clusters, unaligned: the rest of the cluster is copied up.
    patch = b"\xa5" * 1000 + b"secret-marker-" * 10
    await pool.write(clone, 70_001, body(patch), gzip=False, max_decompressed=64 * MiB)
    expected = bytearray(data + bytes(4 * MiB - len(data)))
    expected[70_001 : 70_001 + len(patch)] = patch
    grown = Volume(clone.drive, clone.format, 6 * MiB, clone.secret)
    await pool.resize(clone, grown.size)
    expected += bytes(2 * MiB)
    await pool.write(grown, 5 * MiB, body(b"tail" * 100), gzip=False, max_decompressed=64 * MiB)
    expected[5 * MiB : 5 * MiB + 400] = b"tail" * 100
    assert await read_all(pool, grown) == bytes(expected)
    assert await read_all(pool, grown, 70_000, 2000) == bytes(expected[70_000:72_000])
    # The base never changes: another clone still reads the image.
    other = _volume(layout, 4 * MiB)
    await pool.create(other)
    await pool.copy(stored, other, "gunzip", _ignore)
    assert (await read_all(pool, other))[: len(data)] == data
    await pool.close()
    if layout == "qcow2-luks":
        # The drive's own writes are encrypted in its file; the public base is not.
        assert b"secret-marker-" not in pool.path(grown).read_bytes()
    else:
        check = (
            subprocess.run(["qemu-img", "check", "-f", "qcow2", str(pool.path(grown))], capture_output=True, text=True)
            if layout == "qcow2"
            else None
        )
        assert check is None or check.returncode == 0, check.stdout + check.stderr


async def test_a_base_in_use_is_not_removed(pool, image):
    stored, _ = image
    clone = _volume("qcow2", 4 * MiB)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    with pytest.raises(BusyError) as e:
        await pool.remove_image(IMAGE)
    assert clone.drive in e.value.message
    assert pool.base_path(IMAGE).exists() and stored.path.exists()
    # Imaged again from something else, the drive lets go of the base.
    source = Volume(str(uuid.uuid4()), "raw", 4 * MiB)
    await pool.create(source)
    await pool.copy(source, clone, "", _ignore)
    assert await pool.image_users(IMAGE) == []
    await pool.remove_image(IMAGE)
    assert not pool.base_path(IMAGE).exists() and not stored.path.exists()


async def test_a_base_is_immutable_and_made_for_old_images(pool, image):
    stored, data = image
    base = pool.base_path(IMAGE)
    assert base.stat().st_mode & 0o777 == 0o400
    assert base.read_bytes() == data + bytes(-len(data) % 512)
    base.unlink()  # an image added before bases existed: made on first use
    clone = _volume("qcow2", 4 * MiB)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    assert base.exists()
    assert (await read_all(pool, clone))[: len(data)] == data


async def test_an_image_too_big_leaves_the_drive_as_it_was(pool, image):
    stored, _ = image
    small = _volume("qcow2", 1 * MiB)
    await pool.create(small)
    await pool.write(small, 0, body(b"keep" * 100), gzip=False, max_decompressed=64 * MiB)
    with pytest.raises(FullError):
        await pool.copy(stored, small, "gunzip", _ignore)
    assert (await read_all(pool, small))[:400] == b"keep" * 100


async def test_an_encrypted_clone_keeps_the_drives_luks_area(pool, image):
    """The overlay reuses the LUKS header the drive's file already had (same passphrase and master
    key), instead of building a key slot again; QEMU opens it with the drive's passphrase."""
    from elastic_api.storage.qcow2_luks import luks_area

    stored, data = image
    clone = _volume("qcow2-luks", 4 * MiB)
    await pool.create(clone)
    before = pool.path(clone).read_bytes()
    area = luks_area(before[:65536])
    assert area is not None
    offset, length = area
    await pool.copy(stored, clone, "gunzip", _ignore)
    after = pool.path(clone).read_bytes()
    new_area = luks_area(after[:65536])
    assert new_area is not None
    new_offset, new_length = new_area
    assert new_length == length and after[new_offset : new_offset + length] == before[offset : offset + length]
    assert (await read_all(pool, clone))[: len(data)] == data
    assert luks_area(b"QFI\xfb" + bytes(200)) is None and luks_area(b"not qcow2" * 20) is None


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_clone_is_a_source_like_any_drive(pool, image, layout):
    """Drive to drive imaging from a clone copies its bytes (the base's and its own writes) into a
    drive of its own, which keeps no link to the base."""
    stored, data = image
    clone = _volume(layout, 4 * MiB)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    await pool.write(clone, 1000, body(b"mine" * 50), gzip=False, max_decompressed=64 * MiB)
    expected = bytearray(data + bytes(4 * MiB - len(data)))
    expected[1000:1200] = b"mine" * 50
    for target_layout in LAYOUTS:
        copy = _volume(target_layout, 4 * MiB)
        await pool.create(copy)
        await pool.copy(clone, copy, "", _ignore)
        assert await read_all(pool, copy) == bytes(expected)
        assert copy.drive not in await pool.image_users(IMAGE)


async def test_a_raw_clone_is_exactly_the_drives_size(pool, tmp_path):
    raw = tmp_path / "odd.raw"
    raw.write_bytes(b"\x42" * 1000)  # padded to 1024 in the base
    stored = await pool.import_image(IMAGE, raw)
    clone = Volume(str(uuid.uuid4()), "raw", 1000)
    await pool.create(clone)
    await pool.copy(stored, clone, "gunzip", _ignore)
    assert pool.path(clone).stat().st_size == 1000
    assert await read_all(pool, clone) == b"\x42" * 1000
