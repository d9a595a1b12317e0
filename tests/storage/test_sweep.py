"""The start-up sweep of temporary files that operations killed half-way leave in the pool."""

from __future__ import annotations

import fcntl
import os
import uuid

from elastic_api.storage.library import ImageLibrary
from elastic_api.storage.pool import Pool


def plant(directory, name: str) -> str:
    (directory / name).write_bytes(b"left behind")
    return name


async def test_leftovers_of_killed_operations_are_removed(pool: Pool, make_volume):
    kept_volume = await make_volume("qcow2")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    left = {
        plant(pool.pool_dir, f".{ids[0]}.qcow2.new"),
        plant(pool.pool_dir, f".{ids[1]}.nbd"),
        plant(pool.images_dir, f".{ids[2]}.gz.tmp"),
    }
    # Names that are not ours to remove: other hidden files, non-UUIDs, a volume, an image.
    others = {
        plant(pool.pool_dir, ".keep"),
        plant(pool.pool_dir, ".not-a-uuid.qcow2.new"),
        plant(pool.pool_dir, f"{ids[0]}.qcow2.new"),
        plant(pool.pool_dir, f".{ids[0]}.raw.old"),
        plant(pool.images_dir, f"{ids[2]}.gz"),
        f"{kept_volume.drive}.qcow2",
    }
    assert sorted(await pool.sweep_temporaries()) == sorted(left)
    present = set(os.listdir(pool.pool_dir)) | set(os.listdir(pool.images_dir))
    assert present >= others and not present & left
    assert await pool.sweep_temporaries() == []


async def test_an_import_in_progress_is_left_alone(pool: Pool):
    """`elastic-api image add` runs beside the server; its temporary is locked while it lives."""
    name = plant(pool.images_dir, f".{uuid.uuid4()}.gz.tmp")
    with open(pool.images_dir / name, "rb+") as importing:
        fcntl.flock(importing.fileno(), fcntl.LOCK_EX)
        assert await pool.sweep_temporaries() == []
        assert (pool.images_dir / name).exists()
    assert await pool.sweep_temporaries() == [name]


async def test_an_import_holds_its_lock_while_it_writes(pool: Pool, tmp_path, monkeypatch):
    """The lock the sweep looks for is really taken by the import."""
    source = tmp_path / "disk.raw"
    source.write_bytes(os.urandom(64 * 1024))
    image = str(uuid.uuid4())
    seen = []
    real_compress = ImageLibrary._compress

    def compress(self, src, path):
        temp = path.with_name(f".{path.name}.tmp")
        real_fsync = os.fsync

        def fsync(fd):  # the import syncs its temporary before the rename: it must be locked then
            seen.append(pool._sweep_temporaries())
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        try:
            return real_compress(self, src, path)
        finally:
            monkeypatch.setattr(os, "fsync", real_fsync)
            assert not temp.exists()

    monkeypatch.setattr(ImageLibrary, "_compress", compress)
    stored = await pool.import_image(image, source)
    # Without the lock, the first sweep would have removed the temporary and the rename failed.
    assert seen and all(removed == [] for removed in seen) and stored.size == 64 * 1024
