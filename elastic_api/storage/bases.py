"""Standard images as immutable bases, and drives cloned from them copy-on-write.

A standard image's gzip file (the stream `/drives/D/image/IMAGE` without a conversion copies, and
`/gunzip` used to inflate) stays in the library; beside it, under the pool, lives its base: the
image's raw bytes once, padded with zeros to a whole sector, read-only. `/gunzip` into a drive
then costs what the drive's layout allows:

- qcow2 (plain): a new qcow2 overlay whose backing file is the base (format raw, given in the
  header, never probed). Unwritten clusters read the base; the drive's writes stay in its file.
- qcow2 with LUKS inside: the same overlay with LUKS in it (storage/qcow2_luks.py writes the
  backing file name): QEMU reads the public base as it is and encrypts, with the drive's key,
  every cluster the drive writes, including the base's bytes it copies up on a partial write.
- plain raw: a reflink of the base (FICLONE) where the file system shares extents (XFS, Btrfs):
  no byte copied, no link kept. Elsewhere (ext4) a copy of the base's data extents only, made by
  the kernel (copy_file_range), holes left as holes: still no gunzip, but O(image data).
- legacy LUKS files (encrypted raw, no longer created) keep the full encrypted copy.

The base's path is absolute and never changes (`POOL/bases/IMAGE.raw`), since overlays name it in
their headers; qemu-storage-daemon and a guest's QEMU open it read-only through the overlay. An
overlay keeps its base alive: removing an image whose base backs a drive is refused (in use), and
a clone being made holds a shared lock on the base, so a removal racing it sees the new user."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
from pathlib import Path

from elastic_api.errors import BusyError, FailedError, MissingError
from elastic_api.model.ids import is_id
from elastic_api.storage.fileops import NO_ROOM, no_room, replace_synced, sync_dir, unlink_quietly, write_all
from elastic_api.storage.gzipstream import Gunzip

# Under the pool: the same file system as the drives (a reflink needs it), an absolute path.
BASES_DIR = "bases"
BASE_SUFFIX = "raw"
# A base being made (`.UUID.raw.tmp`), left behind when the process died making it.
BASE_TEMPORARIES = ("raw.tmp",)
SECTOR = 512
# linux/fs.h: FICLONE = _IOW(0x94, 9, int)
FICLONE = 0x40049409
# Errors meaning "this file system cannot share extents": fall back to a copy.
NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS)
# A qcow2 header: magic, version, backing file offset and length (docs/interop/qcow2.txt).
QCOW2_HEAD = struct.Struct(">4sIQI")
QCOW2_MAGIC = b"QFI\xfb"
# Bytes of a qcow2 file read to find its backing file's name (it lives in the first cluster).
QCOW2_HEAD_READ = 64 * 1024


class Bases:
    def __init__(self, pool_dir: Path, *, chunk: int) -> None:
        self.pool_dir = pool_dir
        self.dir = pool_dir / BASES_DIR  # made with the first base
        self._chunk = chunk
        self._making: dict[str, asyncio.Lock] = {}

    def path(self, image: str) -> Path:
        if not is_id(image):
            raise FailedError("not an image of this library")
        return self.dir / f"{image}.{BASE_SUFFIX}"

    async def ensure(self, image: str, gzip_path: Path) -> Path:
        """The image's base, inflated from its gzip file the first time it is needed (images added
        before bases existed; `image add` makes it at once)."""
        path = self.path(image)
        lock = self._making.setdefault(image, asyncio.Lock())
        async with lock:
            if not await asyncio.to_thread(path.exists):
                await asyncio.to_thread(self._inflate, gzip_path, path)
        return path

    def _inflate(self, gzip_path: Path, path: Path) -> None:
        """Blocking: the image's raw bytes, sparse (zero blocks left as holes), padded with zeros to
        a whole sector, synced and read-only before it takes its name."""
        temp = path.with_name(f".{path.name}.tmp")
        self.dir.mkdir(mode=0o700, exist_ok=True)
        try:
            source = open(gzip_path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise MissingError("no such image") from None
        try:
            with source:
                fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # a start-up sweep leaves a base being made alone
                    inflater = Gunzip()
                    size = 0
                    while block := source.read(self._chunk):
                        for out in inflater.inflate(block, self._chunk):
                            if out.count(0) != len(out):
                                write_all(fd, out, size)
                            size += len(out)
                    inflater.finish()
                    os.ftruncate(fd, -(-size // SECTOR) * SECTOR)
                    os.fchmod(fd, 0o400)  # immutable: overlays read it, nothing writes it
                    os.fsync(fd)
                finally:
                    os.close(fd)
            replace_synced(temp, path)
        except OSError as e:
            raise (no_room() if e.errno in NO_ROOM else FailedError("the image's base could not be made")) from None
        finally:
            unlink_quietly(temp)

    def hold(self, base: Path) -> int:
        """Blocking: a descriptor holding a shared lock on the base while a clone of it is made
        (close it to let go); MissingError when the base was removed meanwhile, its image with it."""
        try:
            fd = os.open(base, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise MissingError("no such image") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_nlink == 0:
                raise MissingError("no such image")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def users(self, image: str) -> list[str]:
        """Blocking: the drives whose qcow2 file names this image's base as its backing file."""
        base = os.fsencode(str(self.path(image)))
        found = []
        for name in os.listdir(self.pool_dir):
            stem, dot, suffix = name.partition(".")
            if dot and suffix == "qcow2" and is_id(stem) and _backing_file(self.pool_dir / name) == base:
                found.append(stem)
        return sorted(found)

    def remove(self, image: str) -> None:
        """Blocking: remove the base unless a drive's overlay uses it (BusyError). The exclusive
        lock waits out clones being made, which then show among the users."""
        path = self.path(image)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = self.users(image)
            if users:
                raise BusyError(f"standard image {image} is in use by {len(users)} drive(s): {' '.join(users[:10])}")
            unlink_quietly(path)
            sync_dir(self.dir)
        finally:
            os.close(fd)

    def sweep_temporaries(self) -> list[str]:
        from elastic_api.storage.library import locked

        removed: list[str] = []
        if not self.dir.is_dir():
            return removed
        for name in os.listdir(self.dir):
            stem, dot, suffix = name[1:].partition(".")
            if (
                name.startswith(".")
                and dot
                and suffix in BASE_TEMPORARIES
                and is_id(stem)
                and not locked(self.dir / name)
            ):
                unlink_quietly(self.dir / name)
                removed.append(f"{BASES_DIR}/{name}")
        return removed


def _backing_file(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as file:
            head = file.read(QCOW2_HEAD_READ)
    except OSError:
        return None
    if len(head) < QCOW2_HEAD.size:
        return None
    magic, _, offset, length = QCOW2_HEAD.unpack_from(head)
    if magic != QCOW2_MAGIC or not offset or offset + length > len(head):
        return None
    return head[offset : offset + length]


def clone_raw(base: Path, temp: Path, size: int) -> str:
    """Blocking: a new plain raw file at temp holding the base's bytes, then zeros up to size;
    "reflink" when the file system shared the base's extents, "copy" when its data was copied."""
    try:
        source = os.open(base, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MissingError("no such image") from None
    try:
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            how = "reflink"
            try:
                fcntl.ioctl(fd, FICLONE, source)
            except OSError as e:
                if e.errno not in NO_REFLINK:
                    raise
                how = "copy"
                _copy_data(source, fd, os.fstat(source).st_size)
            # Exactly the drive's size: beyond the image, the base holds only its sector padding.
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        unlink_quietly(temp)
        raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be imaged")) from None
    finally:
        os.close(source)
    return how


def _copy_data(source: int, target: int, size: int) -> None:
    """The source's data extents into target at the same offsets, in the kernel; holes stay holes."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(source, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(source, start, os.SEEK_HOLE)
        offset = start
        while offset < end:
            copied = os.copy_file_range(source, target, end - offset, offset, offset)
            if not copied:
                raise FailedError("the image's base ended early")
            offset += copied
        pos = end
    os.ftruncate(target, size)


__all__ = ["BASES_DIR", "Bases", "clone_raw"]
