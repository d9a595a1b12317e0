"""Volumes reached through an NBD export of qemu-storage-daemon, so that QEMU's own block layer
does the work: qcow2 (plain, or with LUKS inside: every encrypted drive made today), and the raw
LUKS files that older versions made for encrypted raw drives (still served, no longer created).

A LUKS file's holes decrypt to noise, so those are written with encrypted zeros when created or
grown, and every byte of an image is written into them; qcow2 reads unallocated clusters as zeros,
encrypted or not, so nothing of the kind is needed there."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from elastic_api.errors import FailedError, FullError
from elastic_api.storage.base import Volume
from elastic_api.storage.aio import in_thread, pieces, pipelined
from elastic_api.storage.exports import SECRET_ID, Exports, qemu_escape
from elastic_api.storage.fileops import NO_ROOM, no_room, replace_synced, unlink_quietly, write_all
from elastic_api.storage.imaging import Piece, piece_length
from elastic_api.storage.nbd import NbdLanes
from elastic_api.storage.qcow2_luks import Image, luks_area, qcow2_luks_image, qcow2_overlay
from elastic_api.storage.qemu_img import QemuImg
from elastic_api.storage.staging import Staging
from elastic_api.storage.zeros import Run, split, zero_runs

KiB = 1024
MiB = 1024 * KiB
# What we create qcow2 files with (qemu's default); the room estimate counts whole clusters.
QCOW2_CLUSTER = 64 * KiB
# qcow2 sizes are whole 512-byte sectors; qemu rounds up, and so do we, explicitly.
QCOW2_SECTOR = 512
# Room a qcow2 write needs beyond its clusters: L2 tables, refcount blocks and the header.
QCOW2_METADATA_SLACK = 1 * MiB
# NBD requests in flight per write or copy: enough to keep qemu busy, few enough to bound memory.
NBD_DEPTH = 4
# The largest LUKS area reused from a drive's file (ours are 2 MiB: eight 250 KiB key slots).
LUKS_AREA_MAX = 16 * MiB
# Legacy LUKS volumes: AES-256 in XTS mode with plain64 sector IVs (what `aes-xts-plain` means).
LUKS_CIPHER = "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256"
# Milliseconds of PBKDF2 to unlock a legacy LUKS volume made by qemu-img (tests still make them).
LUKS_ITER_TIME_MS = 10


def is_luks(volume: Volume) -> bool:
    """An encrypted raw volume: a LUKS file, whose holes decrypt to noise."""
    return volume.format == "raw" and volume.encrypted


def sectors(size: int) -> int:
    return -(-size // QCOW2_SECTOR) * QCOW2_SECTOR


class NbdVolumes:
    """The operations of qcow2 and LUKS volumes, given their paths (the pool names the files)."""

    def __init__(self, pool_dir: Path, exports: Exports, qemu_img: QemuImg, chunk: int) -> None:
        self._pool_dir = pool_dir
        self._exports = exports
        self._qemu_img = qemu_img
        self._chunk = chunk

    def use(self, volume: Volume, path: Path) -> contextlib.AbstractAsyncContextManager[NbdLanes]:
        """The volume's NBD export, started or shared."""
        return self._exports.use(
            volume.drive, path, driver="luks" if is_luks(volume) else "qcow2", secret=volume.secret
        )

    async def create(self, volume: Volume, path: Path) -> None:
        if await in_thread(path.exists):
            raise FailedError("the drive already has storage")
        temp = path.with_name(f".{path.name}.new")
        try:
            if is_luks(volume):
                await in_thread(self._check_room, sectors(volume.size))
            await self._create_image(volume, temp)
            if is_luks(volume):
                await self._zero_luks(volume, temp, 0)
                # Its daemons opened the file by its temporary name: none outlives the rename.
                await self._exports.stop(volume.drive, wait=True)
            await in_thread(replace_synced, temp, path)
        finally:
            await in_thread(unlink_quietly, temp)

    async def _create_image(self, volume: Volume, path: Path) -> None:
        """A new qcow2 or LUKS file: qcow2 reads as zeros, LUKS as noise."""
        size = sectors(volume.size)
        if is_luks(volume):
            await self._qemu_img(
                "create",
                "-q",
                "-f",
                "luks",
                "-o",
                f"key-secret={SECRET_ID},iter-time={LUKS_ITER_TIME_MS},{LUKS_CIPHER}",
                str(path),
                str(size),
                secret=volume.secret,
            )
        elif volume.secret is not None:
            # Built here, not by qemu-img, whose PBKDF2 calibration costs a second of CPU per image.
            await in_thread(_write_image, path, qcow2_luks_image(size, volume.secret))
            return
        else:
            await self._qemu_img(
                "create", "-q", "-f", "qcow2", "-o", f"cluster_size={QCOW2_CLUSTER}", str(path), str(size)
            )
        await in_thread(os.chmod, path, 0o600)

    async def create_overlay(self, volume: Volume, path: Path, base: Path, current: Path) -> None:
        """A new qcow2 file at path (plain, or with LUKS inside for an encrypted volume) whose
        unwritten clusters read the raw file base: copy-on-write imaging (storage/bases.py). An
        encrypted one keeps the LUKS area of the drive's `current` file (same drive, same
        passphrase and master key), which costs a read instead of a key slot's hashing."""
        size = sectors(volume.size)
        if volume.secret is not None:

            def build() -> None:
                image = qcow2_luks_image(size, volume.secret or b"", backing=(str(base), "raw"), luks=_luks_of(current))
                _write_image(path, image)

            await in_thread(build)
            return
        # The base's format is written into the overlay, never probed from the base's bytes.
        await in_thread(_write_image, path, qcow2_overlay(size, (str(base), "raw")))

    async def _zero_luks(self, volume: Volume, path: Path, start: int) -> None:
        """Encrypted zeros over [start, end) of a LUKS volume, whose unwritten bytes decrypt to
        noise: a new or grown encrypted drive reads as zeros, to guests as to the API."""
        async with self.use(volume, path) as nbd:
            _check_export(nbd, volume)
            await pipelined(_zeroes(nbd, start, volume.size, self._chunk), NBD_DEPTH)
            await nbd.flush()

    async def resize(self, volume: Volume, path: Path, size: int) -> None:
        # qemu-img needs the image's write lock, which a running daemon holds.
        await self._exports.stop(volume.drive, wait=True)
        new_size = str(sectors(size))
        if not volume.encrypted:
            await self._qemu_img("resize", "-q", "-f", "qcow2", str(path), new_size)
            return
        if is_luks(volume):
            await in_thread(self._check_room, sectors(size) - sectors(volume.size))
            options = f"driver=luks,key-secret={SECRET_ID}"
        else:
            options = f"driver=qcow2,encrypt.format=luks,encrypt.key-secret={SECRET_ID}"
        await self._qemu_img(
            "resize",
            "-q",
            "--image-opts",
            f"{options},file.driver=file,file.filename={qemu_escape(str(path))}",
            new_size,
            secret=volume.secret,
        )
        if is_luks(volume):
            # The new bytes are holes, which decrypt to noise; a crash before they are zeroed
            # leaves them beyond the size the database knows, and the next resize zeroes them.
            await self._zero_luks(Volume(volume.drive, volume.format, size, volume.secret), path, volume.size)

    async def apply(self, volume: Volume, path: Path, offset: int, staged: Staging) -> None:
        runs = await in_thread(staged.runs)
        if not is_luks(volume):
            # qemu has no reservation call: compare the clusters this write may allocate with the
            # room left, so that a write which cannot fit fails before the drive changes. (A LUKS
            # volume is written in full when created: its writes allocate nothing.)
            await in_thread(self._check_room, _qcow2_need(runs, offset))
        async with self.use(volume, path) as nbd:
            _check_export(nbd, volume)
            await pipelined(self._requests(nbd, offset, staged, runs), NBD_DEPTH)
            await nbd.flush()

    async def _requests(
        self, nbd: NbdLanes, offset: int, staged: Staging, runs: list[Run]
    ) -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
        for run in runs:
            if run.zero:
                yield nbd.write_zeroes(offset + run.start, run.length)
                continue
            for start, end in split(run.start, run.end, self._chunk):
                if staged.exact:
                    yield nbd.write(offset + start, staged.read(start, end))
                    continue
                data = bytes(await in_thread(staged.read, start, end))
                for sub in await in_thread(zero_runs, data, offset + start):
                    if sub.zero:
                        yield nbd.write_zeroes(offset + start + sub.start, sub.length)
                    else:
                        yield nbd.write(offset + start + sub.start, memoryview(data)[sub.start : sub.end])

    async def read(self, volume: Volume, path: Path, offset: int, end: int) -> AsyncGenerator[bytes, None]:
        async with self.use(volume, path) as nbd:
            _check_export(nbd, volume)
            async for data in pieces(offset, end, self._chunk, nbd.read, ahead=4):
                yield data

    async def pieces(self, volume: Volume, path: Path) -> AsyncGenerator[Piece, None]:
        async with self.use(volume, path) as nbd:
            _check_export(nbd, volume)
            for start, end in split(0, volume.size, self._chunk):
                yield await nbd.read(start, end - start)

    async def copy_in(self, volume: Volume, path: Path, source: AsyncIterator[Piece]) -> None:
        """Imaging into the volume: it ends up holding the pieces, then zeros."""
        if is_luks(volume):
            await self._copy_to_luks(volume, path, source)
        else:
            await self._copy_to_qcow2(volume, path, source)

    async def _copy_to_qcow2(self, target: Volume, path: Path, source: AsyncIterator[Piece]) -> None:
        # A fresh image is all unallocated: cheaper than zeroing, and gives the old clusters back.
        await self._exports.stop(target.drive, wait=True)
        temp = path.with_name(f".{path.name}.new")
        try:
            await self._create_image(target, temp)
            await in_thread(replace_synced, temp, path)
        finally:
            await in_thread(unlink_quietly, temp)

        async with self.use(target, path) as nbd:
            _check_export(nbd, target)

            async def requests() -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
                pos = 0
                async for piece in source:
                    n = piece_length(piece)
                    if pos + n > target.size:
                        raise FullError("the image does not fit the drive")
                    if isinstance(piece, bytes):
                        for run in await in_thread(zero_runs, piece, pos):
                            if not run.zero:
                                yield nbd.write(pos + run.start, memoryview(piece)[run.start : run.end])
                    pos += n

            await pipelined(requests(), NBD_DEPTH)
            await nbd.flush()

    async def _copy_to_luks(self, target: Volume, path: Path, source: AsyncIterator[Piece]) -> None:
        """Every byte of the target is written, zeros included (encrypted like the rest): a hole
        would read as noise, and one pass costs less than zeroing first and then copying."""
        async with self.use(target, path) as nbd:
            _check_export(nbd, target)
            end = 0

            async def requests() -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
                nonlocal end
                pos = 0
                async for piece in source:
                    n = piece_length(piece)
                    if pos + n > target.size:
                        raise FullError("the image does not fit the drive")
                    if isinstance(piece, int):
                        async for request in _zeroes(nbd, pos, pos + n, self._chunk):
                            yield request
                    else:
                        for run in await in_thread(zero_runs, piece, pos):
                            if run.zero:
                                yield nbd.write_zeroes(pos + run.start, run.length)
                            else:
                                yield nbd.write(pos + run.start, memoryview(piece)[run.start : run.end])
                    pos += n
                end = pos

            await pipelined(requests(), NBD_DEPTH)
            await pipelined(_zeroes(nbd, end, target.size, self._chunk), NBD_DEPTH)
            await nbd.flush()

    def _check_room(self, need: int) -> None:
        stat = os.statvfs(self._pool_dir)
        if stat.f_bavail * stat.f_frsize < need:
            raise no_room()


def _write_image(path: Path, image: Image) -> None:
    """A new file holding image's pieces (holes elsewhere), synced before it is renamed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be created")) from None
    try:
        os.ftruncate(fd, image.length)
        for offset, data in image.pieces:
            write_all(fd, data, offset)
        os.fsync(fd)
    except OSError as e:
        raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be created")) from None
    finally:
        os.close(fd)


def _luks_of(path: Path) -> tuple[tuple[tuple[int, bytes], ...], int] | None:
    """The LUKS area of an encrypted qcow2 file as pieces (its data blocks, holes left out) and
    its length; None when there is none to reuse (the file is not one)."""
    try:
        with open(path, "rb") as file:
            found = luks_area(file.read(QCOW2_CLUSTER))
            if found is None or found[1] > LUKS_AREA_MAX:
                return None
            file.seek(found[0])
            area = file.read(found[1])
    except OSError:
        return None
    if len(area) != found[1]:
        return None
    pieces = tuple(
        (start, area[start : start + QCOW2_CLUSTER])
        for start in range(0, len(area), QCOW2_CLUSTER)
        if area[start : start + QCOW2_CLUSTER].count(0) != len(area[start : start + QCOW2_CLUSTER])
    )
    return pieces, found[1]


def _qcow2_need(runs: list[Run], offset: int) -> int:
    """Bytes a qcow2 write may newly allocate: every cluster its data touches, plus metadata."""
    clusters = 0
    last = -1
    for run in runs:
        if run.zero:
            continue
        first = max((offset + run.start) // QCOW2_CLUSTER, last + 1)
        final = (offset + run.end - 1) // QCOW2_CLUSTER
        if final >= first:
            clusters += final - first + 1
            last = final
    return clusters * QCOW2_CLUSTER + QCOW2_METADATA_SLACK if clusters else 0


async def _zeroes(nbd: NbdLanes, start: int, end: int, chunk: int) -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
    for piece_start, piece_end in split(start, end, chunk):
        yield nbd.write_zeroes(piece_start, piece_end - piece_start)


def _check_export(nbd: NbdLanes, volume: Volume) -> None:
    if nbd.size < volume.size:
        raise FailedError("the drive's storage is smaller than the drive")


__all__ = ["LUKS_CIPHER", "NbdVolumes", "is_luks"]
