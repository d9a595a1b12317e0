"""The drive pool: volumes named by UUID in one directory, each kind behind its own module (plain
raw files in storage/raw.py, qcow2 and LUKS through QEMU in storage/nbd_volume.py), bounded gzip
writes, imaging, and the standard image library (storage/library.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path

from elastic_api.errors import FullError, MissingError, UsageError
from elastic_api.model.ids import is_id
from elastic_api.storage.base import FORMATS, BaseFile, ImageFile, Progress, Volume
from elastic_api.storage.aio import in_thread, read_ahead
from elastic_api.storage.bases import Bases, clone_raw
from elastic_api.storage.exports import Exports
from elastic_api.storage.fileops import replace_synced, unlink_quietly
from elastic_api.storage.gzipstream import Gunzip
from elastic_api.storage.imaging import Pieces, counted, file_pieces, gunzipped, gzipped
from elastic_api.storage.library import ImageLibrary
from elastic_api.storage.nbd_volume import NbdVolumes, is_luks
from elastic_api.storage.qemu_img import QemuImg
from elastic_api.storage.raw import RawVolumes
from elastic_api.storage.snapshots import DriveSnapshots
from elastic_api.storage.staging import Staging

MiB = 1024 * 1024
# Pieces an imaging job reads ahead of what it has written, overlapping reading and writing.
COPY_READ_AHEAD = 2
# File suffixes in the pool: an encrypted raw drive is a LUKS file, never mistaken for plain bytes.
SUFFIXES = ("raw", "qcow2", "luks")
# Hidden files that live only while an operation runs, left behind when the process dies in it:
# a qcow2 image or raw clone being made (`.UUID.qcow2.new`, `.UUID.raw.new`) and an export's
# socket path (`.UUID.nbd`).
TEMPORARIES = ("qcow2.new", "raw.new", "nbd")


def _plain(volume: Volume) -> bool:
    """A plain raw volume: a sparse file holding the guest's bytes at their own offsets."""
    return volume.format == "raw" and not volume.encrypted


class Pool:
    """Drive volumes as files in `pool_dir`, standard images as gzip files in `images_dir`.

    Plain raw volumes are sparse files written with pread/pwrite in threads; qcow2 volumes and
    every encrypted volume are reached through an NBD export of qemu-storage-daemon (see Exports),
    so that QEMU's own LUKS code encrypts and no plaintext reaches the files."""

    def __init__(
        self,
        pool_dir: Path,
        images_dir: Path,
        *,
        chunk: int = 1 * MiB,
        buffer: int = 8 * MiB,
        export_idle: float = 2.0,
        luks_lanes: int = 1,
        qemu_img: str = "qemu-img",
        storage_daemon: str = "qemu-storage-daemon",
        storage_timeout: float | None = None,
    ) -> None:
        if chunk <= 0 or buffer <= 0:
            raise ValueError("chunk and buffer must be positive")
        # Absolute, so that a path handed to the qemu tools can never be read as a protocol prefix.
        self.pool_dir = Path(os.path.abspath(pool_dir))
        self._pool_prefix = os.path.join(self.pool_dir, "")
        self.images_dir = Path(os.path.abspath(images_dir))
        # Owner-only: qcow2 daemons' sockets appear here for an instant, and drives are users' data.
        self.pool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chunk = chunk
        self._buffer = max(buffer, chunk)
        self._exports = Exports(
            self.pool_dir,
            daemon=storage_daemon,
            idle_seconds=export_idle,
            luks_lanes=luks_lanes,
            pdeathsig=shutil.which("setpriv"),
            request_timeout=storage_timeout,
        )
        self._raw = RawVolumes(chunk)
        self._nbd = NbdVolumes(self.pool_dir, self._exports, QemuImg(qemu_img), chunk)
        self._library = ImageLibrary(self.images_dir, chunk=chunk)
        self._bases = Bases(self.pool_dir, chunk=chunk)
        self._snapshots = DriveSnapshots(self._exports, QemuImg(qemu_img), self._bases)
        self._log = logging.getLogger(__name__)

    # Paths: built from a validated UUID and a known suffix, nothing else.

    def path(self, volume: Volume) -> Path:
        if not is_id(volume.drive) or volume.format not in FORMATS:
            raise UsageError("not a drive of this pool")
        suffix = "luks" if is_luks(volume) else volume.format
        return self.pool_dir / f"{volume.drive}.{suffix}"

    def exports(self) -> set[str]:
        """Drives whose qcow2 export is running (for tests and diagnostics)."""
        return self._exports.running()

    async def close(self) -> None:
        """Stop every qcow2 export; the pool's files stay."""
        await self._exports.close()

    # Volume lifecycle.

    async def create(self, volume: Volume) -> None:
        path = self.path(volume)
        if volume.size < 0:
            raise UsageError("size out of range")
        if _plain(volume):
            await self._raw.create(path, volume.size)
        else:
            await self._nbd.create(volume, path)

    async def destroy(self, volume: Volume) -> None:
        self.path(volume)
        # Whatever it was doing, a destroyed drive has nothing worth finishing.
        await self._exports.stop(volume.drive, wait=False)
        # A drive has one file; which one does not matter here. One trip to a thread for all.
        await in_thread(_unlink_all, [self.pool_dir / f"{volume.drive}.{suffix}" for suffix in SUFFIXES])

    async def resize(self, volume: Volume, size: int) -> None:
        path = self.path(volume)
        if size < volume.size:
            raise UsageError("a drive can only grow")
        if size == volume.size:
            return
        if _plain(volume):
            await self._raw.grow(path, size)
        else:
            await self._nbd.resize(volume, path, size)

    async def volumes(self) -> set[str]:
        return await in_thread(_list, self.pool_dir, SUFFIXES)

    async def sweep_temporaries(self) -> list[str]:
        return await in_thread(self._sweep_temporaries)

    def _sweep_temporaries(self) -> list[str]:
        removed = []
        for name in os.listdir(self.pool_dir):
            stem, dot, suffix = name[1:].partition(".")
            if name.startswith(".") and dot and suffix in TEMPORARIES and is_id(stem):
                unlink_quietly(self.pool_dir / name)
                removed.append(name)
        return removed + self._library.sweep_temporaries() + self._bases.sweep_temporaries()

    # Writes.

    async def write(
        self, volume: Volume, offset: int, body: AsyncIterator[bytes], *, gzip: bool, max_decompressed: int
    ) -> int:
        path = self.path(volume)
        if offset < 0:
            raise UsageError("offset out of range")
        if offset > volume.size:
            raise FullError("the write starts past the end of the drive")
        staged = await self._receive(body, offset, gzip=gzip, room=volume.size - offset, most=max_decompressed)
        try:
            if staged.length:
                if _plain(volume):
                    await self._raw.apply(path, offset, staged)
                else:
                    await self._nbd.apply(volume, path, offset, staged)
        finally:
            await in_thread(staged.close)
        return staged.length

    async def _receive(self, body: AsyncIterator[bytes], offset: int, *, gzip: bool, room: int, most: int) -> Staging:
        """The whole body, inflated and bounds-checked, before anything touches the volume."""
        staging = Staging(self.pool_dir, offset, room=room, most=most, memory=self._buffer)
        inflater = Gunzip() if gzip else None

        def feed(data: bytes, last: bool) -> None:
            if inflater is None:
                if data:
                    staging.add(data)
            else:
                for piece in inflater.inflate(data, self._chunk):
                    staging.add(piece)
                if last:
                    inflater.finish()
            if last:
                staging.finish()

        try:
            pending: list[bytes] = []
            size = 0
            async for piece in body:
                pending.append(piece)
                size += len(piece)
                # Sockets hand over a few KiB at a time; a thread hop per chunk, not per piece.
                if size >= self._chunk:
                    data = b"".join(pending)
                    pending.clear()
                    size = 0
                    await in_thread(feed, data, False)
            await in_thread(feed, b"".join(pending), True)
        except BaseException:
            await in_thread(staging.close)
            raise
        return staging

    # Reads.

    async def release(self, volume: Volume) -> None:
        self.path(volume)
        await self._exports.stop(volume.drive, wait=True)

    def plain_file(self, volume: Volume) -> str | None:
        if not _plain(volume):
            return None
        if not is_id(volume.drive):
            raise UsageError("not a drive of this pool")
        # Joined as text: a Path, built on every read, cost a busy server more than the open.
        return f"{self._pool_prefix}{volume.drive}.raw"

    def read(self, volume: Volume, offset: int, length: int) -> AsyncGenerator[bytes, None]:
        path = self.path(volume)
        if offset < 0 or length < 0:
            raise UsageError("offset out of range")
        end = min(offset + length, volume.size)
        if _plain(volume):
            return self._raw.read(path, offset, end)
        return self._nbd.read(volume, path, offset, end)

    # Imaging.

    async def copy(
        self, source: Volume | ImageFile | BaseFile, target: Volume, conversion: str, progress: Progress
    ) -> None:
        """Imaging. The target ends up holding exactly the converted source bytes, then zeros.

        Sources: a drive's guest bytes, or an image's stored (gzip) bytes, so a standard image is
        imaged with "gunzip" as real clients do. A result known in advance not to fit fails before
        the target changes; one that only shows it part-way (gzip output, gunzip of a drive) fails
        with FullError then, with the target left partly imaged, as any failed imaging leaves it."""
        if conversion not in ("", "gzip", "gunzip"):
            raise UsageError("conversion must be gzip or gunzip")
        target_path = self.path(target)
        if isinstance(source, BaseFile):
            await self._clone_base(source, target, target_path, progress)
            return
        if isinstance(source, ImageFile) and conversion == "gunzip" and not is_luks(target):
            if source.size > target.size:
                raise FullError("the image does not fit the drive")
            # Progress counts the gzip stream's bytes, as a copy does: the base made (or found)
            # is half the way, the clone the rest.
            total = await in_thread(_file_size, self._library.path(source.image))
            progress(0, total)
            await self._clone(source, target, target_path, lambda: progress(total // 2, total))
            progress(total, total)
            return
        pieces: Pieces
        if isinstance(source, Volume):
            source_path = self.path(source)
            if source.drive == target.drive:
                raise UsageError("a drive cannot be imaged from itself")
            total = source.size
            known = total if conversion == "" else None
            if _plain(source):
                pieces = self._raw.pieces(source_path, source.size)
            else:
                pieces = self._nbd.pieces(source, source_path)
        else:
            image_path = self._library.path(source.image)
            total = await in_thread(_file_size, image_path)
            known = total if conversion == "" else source.size if conversion == "gunzip" else None
            pieces = file_pieces(image_path, self._chunk)
        if known is not None and known > target.size:
            await pieces.aclose()
            raise FullError("the image does not fit the drive")
        pieces = counted(pieces, total, progress)
        if conversion == "gunzip":
            pieces = gunzipped(pieces, self._chunk)
        elif conversion == "gzip":
            pieces = gzipped(pieces, self._chunk)
        progress(0, total)
        async with contextlib.aclosing(read_ahead(pieces, COPY_READ_AHEAD)) as ahead:
            if _plain(target):
                await self._raw.copy_in(target_path, target.size, ahead)
            else:
                await self._nbd.copy_in(target, target_path, ahead)
        progress(total, total)

    async def _clone_base(self, source: BaseFile, target: Volume, target_path: Path, progress: Progress) -> None:
        """A template into a drive: a clone of its base, as a standard image's (a legacy LUKS
        file cannot overlay one: it gets the base's bytes copied in)."""
        if source.size > target.size:
            raise FullError("the image does not fit the drive")
        progress(0, source.size)
        base = self._bases.path(source.image)
        if is_luks(target):
            async with contextlib.aclosing(read_ahead(self._raw.pieces(base, source.size), COPY_READ_AHEAD)) as ahead:
                await self._nbd.copy_in(target, target_path, ahead)
        else:
            await self._clone(ImageFile(source.image, base, source.size), target, target_path, lambda: None, base)
        progress(source.size, source.size)

    async def _clone(
        self,
        image: ImageFile,
        target: Volume,
        target_path: Path,
        based: Callable[[], None],
        base: Path | None = None,
    ) -> None:
        """`/gunzip` of a standard image: the target becomes a clone of the image's base (see
        storage/bases.py), replacing its file whole, as imaging always replaced its bytes."""
        if base is None:
            base = await self._bases.ensure(image.image, self._library.path(image.image))
        based()
        # Whatever served the old file is done with it (imaging waited for its users to drain).
        await self._exports.stop(target.drive, wait=True)
        temp = target_path.with_name(f".{target_path.name}.new")
        held = await in_thread(self._bases.hold, base)
        try:
            if _plain(target):
                how = await in_thread(clone_raw, base, temp, target.size)
            else:
                await self._nbd.create_overlay(target, temp, base, target_path)
                how = "overlay"
            await in_thread(replace_synced, temp, target_path)
        finally:
            await in_thread(unlink_quietly, temp)
            await in_thread(os.close, held)
        self._log.info("drive %s cloned from image %s (%s)", target.drive, image.image, how)

    # The standard image library.

    async def import_image(self, image: str, source: Path) -> ImageFile:
        stored = await self._library.import_image(image, source)
        await self._bases.ensure(image, stored.path)
        return stored

    def base_path(self, image: str) -> Path:
        """Where the image's base lives (whether it exists yet or not)."""
        return self._bases.path(image)

    async def image_users(self, image: str) -> list[str]:
        return await in_thread(self._bases.users, image)

    async def image_file(self, image: str) -> ImageFile:
        """A stored standard image; MissingError when there is none."""
        return await self._library.image_file(image)

    async def remove_image(self, image: str) -> None:
        # The base first: BusyError, with the gzip file still there, when a drive's overlay uses it.
        await in_thread(self._bases.remove, image)
        await self._library.remove_image(image)

    async def images(self) -> set[str]:
        return await in_thread(_list, self.images_dir, ("gz",))

    # Snapshots and templates (storage/snapshots.py).

    async def snapshot(self, volume: Volume, op: str, tag: str) -> None:
        await self._snapshots.snapshot(volume, self.path(volume), op, tag)

    async def make_template(self, volume: Volume, image: str, tag: str | None) -> int:
        return await self._snapshots.make_template(volume, self.path(volume), image, tag)

    async def remove_template(self, image: str) -> None:
        await self._snapshots.remove_template(image)


def _list(directory: Path, suffixes: tuple[str, ...]) -> set[str]:
    found = set()
    for name in os.listdir(directory):
        stem, dot, suffix = name.partition(".")
        if dot and suffix in suffixes and is_id(stem):
            found.add(stem)
    return found


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise MissingError("no such image") from None


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        unlink_quietly(path)


__all__ = ["Pool"]
