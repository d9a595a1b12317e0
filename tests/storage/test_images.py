"""The standard image library: raw images stored gzipped, with their size."""

from __future__ import annotations

import gzip
import os

import pytest

from elastic_api.errors import FailedError, MissingError, UsageError
from tests.storage.conftest import MiB, mixed

IMAGE = "e6111e4c-67af-4438-b1bc-189747d5a8e5"


async def test_import_stores_a_plain_gzip_with_the_size(pool, tmp_path):
    data = mixed(2 * MiB + 3, seed=31)
    raw = tmp_path / "image.raw"
    raw.write_bytes(data)
    stored = await pool.import_image(IMAGE, raw)
    assert stored.image == IMAGE and stored.size == len(data)
    assert stored.path == pool.images_dir / f"{IMAGE}.gz"
    assert gzip.decompress(stored.path.read_bytes()) == data  # any gzip reader reads it
    assert stored.path.stat().st_size < len(data)
    assert await pool.image_file(IMAGE) == stored
    assert await pool.images() == {IMAGE}
    assert os.listdir(pool.images_dir) == [f"{IMAGE}.gz"]  # no temporary left


async def test_an_empty_image(pool, tmp_path):
    raw = tmp_path / "empty.raw"
    raw.write_bytes(b"")
    assert (await pool.import_image(IMAGE, raw)).size == 0
    assert (await pool.image_file(IMAGE)).size == 0


async def test_a_gzip_put_there_by_hand_is_measured(pool):
    data = os.urandom(MiB) + bytes(MiB)
    (pool.images_dir / f"{IMAGE}.gz").write_bytes(gzip.compress(data[:5]) + gzip.compress(data[5:]))
    assert (await pool.image_file(IMAGE)).size == len(data)


async def test_missing_and_invalid_images(pool, tmp_path):
    with pytest.raises(MissingError):
        await pool.image_file(IMAGE)
    with pytest.raises(UsageError):
        await pool.image_file("../../etc/passwd")
    with pytest.raises(UsageError):
        await pool.import_image("nope", tmp_path)
    with pytest.raises(FailedError) as e:
        await pool.import_image(IMAGE, tmp_path / "no-such-file.raw")
    assert str(tmp_path) not in e.value.message
    assert os.listdir(pool.images_dir) == []


async def test_remove_image(pool, tmp_path):
    raw = tmp_path / "image.raw"
    raw.write_bytes(b"x" * 1000)
    await pool.import_image(IMAGE, raw)
    await pool.remove_image(IMAGE)
    await pool.remove_image(IMAGE)  # already gone: fine
    assert await pool.images() == set()
    with pytest.raises(MissingError):
        await pool.image_file(IMAGE)
