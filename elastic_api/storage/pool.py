"""The drive pool: raw and qcow2 volumes (plain or LUKS-encrypted) named by UUID, bounded gzip
writes, imaging, the image library."""
from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

from elastic_api.errors import FailedError, FullError, MissingError, UsageError
from elastic_api.model.ids import is_id
from elastic_api.storage import FORMATS, ImageFile, Progress, Volume
from elastic_api.storage.aio import in_thread, pieces, pipelined, read_ahead
from elastic_api.storage.exports import SECRET_ID, Exports, qemu_escape, secret_object, secret_pipe
from elastic_api.storage.fileops import NO_ROOM, FileOps, has_data, no_room, read_exactly, write_all
from elastic_api.storage.gzipstream import Gunzip, Gzip
from elastic_api.storage.nbd import NbdLanes
from elastic_api.storage.qcow2_luks import Image, qcow2_luks_image
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
# Pieces an imaging job reads ahead of what it has written, overlapping reading and writing.
COPY_READ_AHEAD = 2
# Standard images are stored gzipped with their uncompressed size in a gzip FEXTRA subfield (RFC 1952
# §2.3.1.1), since the trailer's ISIZE is modulo 4 GiB. Readers that do not know it skip it.
IMAGE_SIZE_ID = b"ES"
IMAGE_HEADER = struct.Struct("<2sBBIBBH2sHQ")  # magic CM FLG MTIME XFL OS XLEN | SI LEN size
GZIP_FEXTRA = 0x04
# File suffixes in the pool: an encrypted raw drive is a LUKS file, never mistaken for plain bytes.
SUFFIXES = ("raw", "qcow2", "luks")
# LUKS volumes: AES-256 in XTS mode with plain64 sector IVs (what `aes-xts-plain` means today).
LUKS_CIPHER = "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256"
# Milliseconds of PBKDF2 to unlock a volume. A passphrase of 256 random bits gains nothing from
# key stretching, and every export or guest start pays this once.
LUKS_ITER_TIME_MS = 10
# qemu-img calibrates PBKDF2 by timing a few milliseconds of it on the thread's CPU clock. Where
# that clock advances only at scheduler ticks (this VM's kernel: two probes in three read 0 ms) it
# refuses at once ("Unable to get accurate CPU usage"); a refused attempt costs milliseconds, and 40
# refusals in a row are less likely than one in ten million.
QEMU_IMG_TRIES = 40

# Hidden files that live only while an operation runs, left behind when the process dies in it:
# a qcow2 image being made (`.UUID.qcow2.new`), an export's socket path (`.UUID.nbd`), and in the
# image library, a standard image being imported (`.UUID.gz.tmp`).
TEMPORARIES = ("qcow2.new", "nbd")
IMAGE_TEMPORARIES = ("gz.tmp",)

Piece = bytes | int  # guest bytes, or a count of zero bytes (a hole: nothing to read or write)


class Pool:
    """Drive volumes as files in `pool_dir`, standard images as gzip files in `images_dir`.

    Plain raw volumes are sparse files written with pread/pwrite in threads; qcow2 volumes and
    every encrypted volume are reached through an NBD export of qemu-storage-daemon (see Exports),
    so that QEMU's own LUKS code encrypts and no plaintext reaches the files. Zero blocks are
    holes, except in encrypted raw (LUKS) volumes: a hole there decrypts to noise, so they are
    created, grown and zeroed with encrypted zeros and are never sparse."""

    def __init__(self, pool_dir: Path, images_dir: Path, *, chunk: int = 1 * MiB,
                 buffer: int = 8 * MiB, export_idle: float = 2.0, luks_lanes: int = 1,
                 qemu_img: str = "qemu-img", storage_daemon: str = "qemu-storage-daemon") -> None:
        if chunk <= 0 or buffer <= 0:
            raise ValueError("chunk and buffer must be positive")
        # Absolute, so that a path handed to the qemu tools can never be read as a protocol prefix.
        self.pool_dir = Path(os.path.abspath(pool_dir))
        self.images_dir = Path(os.path.abspath(images_dir))
        # Owner-only: qcow2 daemons' sockets appear here for an instant, and drives are users' data.
        self.pool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.images_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chunk = chunk
        self._buffer = max(buffer, chunk)
        self._qemu_img = qemu_img
        self._ops = FileOps()
        self._exports = Exports(self.pool_dir, daemon=storage_daemon, idle_seconds=export_idle,
                                luks_lanes=luks_lanes, pdeathsig=shutil.which("setpriv"))
        self._log = logging.getLogger(__name__)

    # Paths: built from a validated UUID and a known suffix, nothing else.

    def path(self, volume: Volume) -> Path:
        if not is_id(volume.drive) or volume.format not in FORMATS:
            raise UsageError("not a drive of this pool")
        suffix = "luks" if _luks(volume) else volume.format
        return self.pool_dir / f"{volume.drive}.{suffix}"

    def _use(self, volume: Volume, path: Path | None = None) -> contextlib.AbstractAsyncContextManager[NbdLanes]:
        """The volume's NBD export (qcow2 or encrypted volumes)."""
        return self._exports.use(volume.drive, path or self.path(volume),
                                 driver="luks" if _luks(volume) else "qcow2", secret=volume.secret)

    def _image_path(self, image: str) -> Path:
        if not is_id(image):
            raise UsageError("not an image of this library")
        return self.images_dir / f"{image}.gz"

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
        if volume.format == "raw" and not volume.encrypted:
            await in_thread(self._create_raw, path, volume.size)
            return
        if await in_thread(path.exists):
            raise FailedError("the drive already has storage")
        temp = path.with_name(f".{path.name}.new")
        try:
            if _luks(volume):
                await in_thread(self._check_room, _round_up(volume.size, QCOW2_SECTOR))
            await self._create_image(volume, temp)
            if _luks(volume):
                await self._zero_luks(volume, temp, 0)
                # Its daemons opened the file by its temporary name: none outlives the rename.
                await self._exports.stop(volume.drive, wait=True)
            await in_thread(self._rename, temp, path)
        finally:
            await in_thread(_unlink, temp)

    async def _create_image(self, volume: Volume, path: Path) -> None:
        """A new qcow2 or LUKS file through qemu-img: qcow2 reads as zeros, LUKS as noise."""
        size = str(_round_up(volume.size, QCOW2_SECTOR))
        if _luks(volume):
            await self._run_qemu_img("create", "-q", "-f", "luks", "-o",
                                     f"key-secret={SECRET_ID},iter-time={LUKS_ITER_TIME_MS},{LUKS_CIPHER}",
                                     str(path), size, secret=volume.secret)
        elif volume.secret is not None:
            # Built here, not by qemu-img, whose PBKDF2 calibration costs a second of CPU per image.
            await in_thread(self._write_image, path, qcow2_luks_image(int(size), volume.secret))
            return
        else:
            await self._run_qemu_img("create", "-q", "-f", "qcow2", "-o", f"cluster_size={QCOW2_CLUSTER}",
                                     str(path), size)
        await in_thread(os.chmod, path, 0o600)

    async def _zero_luks(self, volume: Volume, path: Path, start: int) -> None:
        """Encrypted zeros over [start, end) of a LUKS volume, whose unwritten bytes decrypt to
        noise: a new or grown encrypted drive reads as zeros, to guests as to the API."""
        async with self._use(volume, path) as nbd:
            _check_export(nbd, volume)
            await pipelined(_zeroes(nbd, start, volume.size, self._chunk), NBD_DEPTH)
            await nbd.flush()

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
        if volume.format == "raw" and not volume.encrypted:
            await in_thread(self._grow_raw, path, size)
            return
        # qemu-img needs the image's write lock, which a running daemon holds.
        await self._exports.stop(volume.drive, wait=True)
        new_size = str(_round_up(size, QCOW2_SECTOR))
        if not volume.encrypted:
            await self._run_qemu_img("resize", "-q", "-f", "qcow2", str(path), new_size)
            return
        if _luks(volume):
            await in_thread(self._check_room, _round_up(size, QCOW2_SECTOR) - _round_up(volume.size, QCOW2_SECTOR))
            options = f"driver=luks,key-secret={SECRET_ID}"
        else:
            options = f"driver=qcow2,encrypt.format=luks,encrypt.key-secret={SECRET_ID}"
        await self._run_qemu_img("resize", "-q", "--image-opts",
                                 f"{options},file.driver=file,file.filename={qemu_escape(str(path))}",
                                 new_size, secret=volume.secret)
        if _luks(volume):
            # The new bytes are holes, which decrypt to noise; a crash before they are zeroed
            # leaves them beyond the size the database knows, and the next resize zeroes them.
            await self._zero_luks(Volume(volume.drive, volume.format, size, volume.secret), path, volume.size)

    async def volumes(self) -> set[str]:
        return await in_thread(self._list, self.pool_dir, SUFFIXES)

    async def sweep_temporaries(self) -> list[str]:
        return await in_thread(self._sweep_temporaries)

    def _sweep_temporaries(self) -> list[str]:
        removed = []
        for directory, suffixes in ((self.pool_dir, TEMPORARIES), (self.images_dir, IMAGE_TEMPORARIES)):
            for name in os.listdir(directory):
                stem, dot, suffix = name[1:].partition(".")
                if not name.startswith(".") or not dot or suffix not in suffixes or not is_id(stem):
                    continue
                path = directory / name
                # `elastic-api image add` may be importing right now (it runs beside the server):
                # its temporary file is locked for as long as the import lives.
                if directory == self.images_dir and _locked(path):
                    continue
                _unlink(path)
                removed.append(name)
        return removed

    # Writes.

    async def write(self, volume: Volume, offset: int, body: AsyncIterator[bytes], *, gzip: bool,
                    max_decompressed: int) -> int:
        path = self.path(volume)
        if offset < 0:
            raise UsageError("offset out of range")
        if offset > volume.size:
            raise FullError("the write starts past the end of the drive")
        staged = await self._receive(body, offset, gzip=gzip, room=volume.size - offset,
                                     most=max_decompressed)
        try:
            if staged.length:
                if volume.format == "raw" and not volume.encrypted:
                    await in_thread(self._apply_raw, path, offset, staged)
                else:
                    await self._apply_nbd(volume, offset, staged)
        finally:
            await in_thread(staged.close)
        return staged.length

    async def _receive(self, body: AsyncIterator[bytes], offset: int, *, gzip: bool, room: int,
                       most: int) -> Staging:
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

    def _apply_raw(self, path: Path, offset: int, staged: Staging) -> None:
        """Reserve, then write data and punch zeros, then fdatasync. Out of room shows while
        reserving, when every block still reads as it did (a reserved block reads as before)."""
        fd = _open(path, os.O_RDWR)
        try:
            runs = staged.runs()
            for run in runs:
                if not run.zero:
                    self._ops.reserve(fd, offset + run.start, run.length)
            for run in runs:
                if run.zero:
                    self._ops.punch(fd, offset + run.start, run.length)
                    continue
                for start, end in split(run.start, run.end, self._chunk):
                    data = staged.read(start, end)
                    if staged.exact:
                        write_all(fd, data, offset + start)
                        continue
                    for sub in zero_runs(bytes(data), offset + start):
                        if sub.zero:
                            self._ops.punch(fd, offset + start + sub.start, sub.length)
                        else:
                            write_all(fd, memoryview(data)[sub.start:sub.end], offset + start + sub.start)
            _sync(fd)
        finally:
            os.close(fd)

    async def _apply_nbd(self, volume: Volume, offset: int, staged: Staging) -> None:
        runs = await in_thread(staged.runs)
        if not _luks(volume):
            # qemu has no reservation call: compare the clusters this write may allocate with the
            # room left, so that a write which cannot fit fails before the drive changes. (A LUKS
            # volume is written in full when created: its writes allocate nothing.)
            await in_thread(self._check_room, _qcow2_need(runs, offset))
        async with self._use(volume) as nbd:
            _check_export(nbd, volume)
            await pipelined(self._qcow2_requests(nbd, offset, staged, runs), NBD_DEPTH)
            await nbd.flush()

    async def _qcow2_requests(self, nbd: NbdLanes, offset: int, staged: Staging,
                              runs: list[Run]) -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
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
                        yield nbd.write(offset + start + sub.start, memoryview(data)[sub.start:sub.end])

    # Reads.

    async def release(self, volume: Volume) -> None:
        self.path(volume)
        await self._exports.stop(volume.drive, wait=True)

    def plain_file(self, volume: Volume) -> Path | None:
        return self.path(volume) if volume.format == "raw" and not volume.encrypted else None

    def read(self, volume: Volume, offset: int, length: int) -> AsyncGenerator[bytes, None]:
        path = self.path(volume)
        if offset < 0 or length < 0:
            raise UsageError("offset out of range")
        end = min(offset + length, volume.size)
        if volume.format == "raw" and not volume.encrypted:
            return self._read_raw(path, offset, end)
        return self._read_nbd(volume, offset, end)

    async def _read_raw(self, path: Path, offset: int, end: int) -> AsyncGenerator[bytes, None]:
        fd = await in_thread(_open, path, os.O_RDONLY)
        try:
            async for data in pieces(offset, end, self._chunk,
                                     lambda pos, n: asyncio.to_thread(self._read_raw_piece, fd, pos, n)):
                yield data
        finally:
            os.close(fd)

    def _read_raw_piece(self, fd: int, pos: int, n: int) -> bytes:
        try:
            if not has_data(fd, pos, pos + n):
                return bytes(n)  # a hole: zeros without touching the disk
        except OSError:
            raise FailedError("the drive's storage could not be read") from None
        return read_exactly(fd, pos, n)

    async def _read_nbd(self, volume: Volume, offset: int, end: int) -> AsyncGenerator[bytes, None]:
        async with self._use(volume) as nbd:
            _check_export(nbd, volume)
            async for data in pieces(offset, end, self._chunk, nbd.read, ahead=4):
                yield data

    # Imaging.

    async def copy(self, source: Volume | ImageFile, target: Volume, conversion: str,
                   progress: Progress) -> None:
        """Imaging. The target ends up holding exactly the converted source bytes, then zeros.

        Sources: a drive's guest bytes, or an image's stored (gzip) bytes, so a standard image is
        imaged with "gunzip" as real clients do. A result known in advance not to fit fails before
        the target changes; one that only shows it part-way (gzip output, gunzip of a drive) fails
        with FullError then, with the target left partly imaged, as any failed imaging leaves it."""
        if conversion not in ("", "gzip", "gunzip"):
            raise UsageError("conversion must be gzip or gunzip")
        self.path(target)
        pieces: AsyncGenerator[Piece, None]
        if isinstance(source, Volume):
            source_path = self.path(source)
            if source.drive == target.drive:
                raise UsageError("a drive cannot be imaged from itself")
            total = source.size
            known = total if conversion == "" else None
            if source.format == "raw" and not source.encrypted:
                pieces = self._pieces_raw(source_path, source.size)
            else:
                pieces = self._pieces_nbd(source)
        else:
            image_path = self._image_path(source.image)
            total = await in_thread(_file_size, image_path)
            known = total if conversion == "" else source.size if conversion == "gunzip" else None
            pieces = self._pieces_file(image_path)
        if known is not None and known > target.size:
            await pieces.aclose()
            raise FullError("the image does not fit the drive")
        pieces = _counted(pieces, total, progress)
        if conversion == "gunzip":
            pieces = self._gunzip(pieces)
        elif conversion == "gzip":
            pieces = self._gzip(pieces)
        progress(0, total)
        async with contextlib.aclosing(read_ahead(pieces, COPY_READ_AHEAD)) as ahead:
            if _luks(target):
                await self._copy_to_luks(target, ahead)
            elif target.format == "raw":
                await self._copy_to_raw(target, ahead)
            else:
                await self._copy_to_qcow2(target, ahead)
        progress(total, total)

    async def _pieces_raw(self, path: Path, size: int) -> AsyncGenerator[Piece, None]:
        fd = await in_thread(_open, path, os.O_RDONLY)
        try:
            pos = 0
            while pos < size:
                piece = await in_thread(self._next_raw_piece, fd, pos, size)
                yield piece
                pos += piece if isinstance(piece, int) else len(piece)
        finally:
            os.close(fd)

    def _next_raw_piece(self, fd: int, pos: int, end: int) -> Piece:
        """The data from pos up to the next hole (at most a chunk), or the length of the hole at pos."""
        try:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    return end - pos
                if e.errno != errno.EINVAL:
                    raise
                data = pos
            if data > pos:
                return min(data, end) - pos
            try:
                hole = os.lseek(fd, pos, os.SEEK_HOLE)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                hole = end
        except OSError:
            raise FailedError("the drive's storage could not be read") from None
        return read_exactly(fd, pos, min(hole, end, pos + self._chunk) - pos)

    async def _pieces_nbd(self, volume: Volume) -> AsyncGenerator[Piece, None]:
        async with self._use(volume) as nbd:
            _check_export(nbd, volume)
            for start, end in split(0, volume.size, self._chunk):
                yield await nbd.read(start, end - start)

    async def _pieces_file(self, path: Path) -> AsyncGenerator[Piece, None]:
        file = await in_thread(_open_file, path)
        try:
            while data := await in_thread(file.read, self._chunk):
                yield data
        finally:
            await in_thread(file.close)

    async def _gunzip(self, pieces: AsyncGenerator[Piece, None]) -> AsyncGenerator[Piece, None]:
        # Lenient end: a drive holding a .gz file has zeros (or old bytes) after it.
        inflater = Gunzip(lenient_end=True)
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                if isinstance(piece, int):
                    for start, end in split(0, piece, self._chunk):
                        async for out in self._inflate(inflater, bytes(end - start)):
                            yield out
                        if inflater.ended:
                            break
                else:
                    async for out in self._inflate(inflater, piece):
                        yield out
                if inflater.ended:
                    break  # the rest of the source is not part of the stream: do not read it
        inflater.finish()

    async def _inflate(self, inflater: Gunzip, data: bytes) -> AsyncIterator[bytes]:
        # One thread hop per inflated chunk: a bomb in one input piece still comes out chunk by chunk.
        outputs = inflater.inflate(data, self._chunk)
        while (out := await in_thread(next, outputs, None)) is not None:
            yield out

    async def _gzip(self, pieces: AsyncGenerator[Piece, None]) -> AsyncGenerator[Piece, None]:
        deflater = Gzip()
        out: list[bytes] = []
        size = 0
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                if isinstance(piece, bytes):
                    inputs = [piece]
                else:
                    inputs = [bytes(end - start) for start, end in split(0, piece, self._chunk)]
                for data in inputs:
                    compressed = await in_thread(deflater.deflate, data)
                    if compressed:
                        out.append(compressed)
                        size += len(compressed)
                    if size >= self._chunk:
                        yield b"".join(out)
                        out.clear()
                        size = 0
        out.append(deflater.finish())
        yield b"".join(out)

    async def _copy_to_raw(self, target: Volume, pieces: AsyncIterator[Piece]) -> None:
        fd = await in_thread(_open, self.path(target), os.O_RDWR)
        try:
            # Imaging replaces the whole drive: start from all holes, then write only data.
            await in_thread(self._ops.punch, fd, 0, target.size)
            pos = 0
            async for piece in pieces:
                n = piece if isinstance(piece, int) else len(piece)
                if pos + n > target.size:
                    raise FullError("the image does not fit the drive")
                if isinstance(piece, bytes):
                    await in_thread(_write_data, fd, pos, piece)
                pos += n
            await in_thread(_sync, fd)
        finally:
            await in_thread(os.close, fd)  # on NFS, closing a written file flushes it

    async def _copy_to_qcow2(self, target: Volume, pieces: AsyncIterator[Piece]) -> None:
        path = self.path(target)
        # A fresh image is all unallocated: cheaper than zeroing, and gives the old clusters back.
        await self._exports.stop(target.drive, wait=True)
        temp = path.with_name(f".{path.name}.new")
        try:
            await self._create_image(target, temp)
            await in_thread(self._rename, temp, path)
        finally:
            await in_thread(_unlink, temp)

        async with self._use(target) as nbd:
            _check_export(nbd, target)

            async def requests() -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
                pos = 0
                async for piece in pieces:
                    n = piece if isinstance(piece, int) else len(piece)
                    if pos + n > target.size:
                        raise FullError("the image does not fit the drive")
                    if isinstance(piece, bytes):
                        for run in await in_thread(zero_runs, piece, pos):
                            if not run.zero:
                                yield nbd.write(pos + run.start, memoryview(piece)[run.start:run.end])
                    pos += n

            await pipelined(requests(), NBD_DEPTH)
            await nbd.flush()

    async def _copy_to_luks(self, target: Volume, pieces: AsyncIterator[Piece]) -> None:
        """Every byte of the target is written, zeros included (encrypted like the rest): a hole
        would read as noise, and one pass costs less than zeroing first and then copying."""
        async with self._use(target) as nbd:
            _check_export(nbd, target)
            end = 0

            async def requests() -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
                nonlocal end
                pos = 0
                async for piece in pieces:
                    n = piece if isinstance(piece, int) else len(piece)
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
                                yield nbd.write(pos + run.start, memoryview(piece)[run.start:run.end])
                    pos += n
                end = pos

            await pipelined(requests(), NBD_DEPTH)
            await pipelined(_zeroes(nbd, end, target.size, self._chunk), NBD_DEPTH)
            await nbd.flush()

    # The standard image library.

    async def import_image(self, image: str, source: Path) -> ImageFile:
        path = self._image_path(image)
        size = await in_thread(self._compress_image, Path(source), path)
        return ImageFile(image, path, size)

    async def image_file(self, image: str) -> ImageFile:
        """A stored standard image; MissingError when there is none."""
        path = self._image_path(image)
        return ImageFile(image, path, await in_thread(self._image_size, path))

    async def remove_image(self, image: str) -> None:
        await in_thread(_unlink, self._image_path(image))

    async def images(self) -> set[str]:
        return await in_thread(self._list, self.images_dir, ("gz",))

    def _compress_image(self, source: Path, path: Path) -> int:
        temp = path.with_name(f".{path.name}.tmp")
        try:
            reader = open(source, "rb")  # noqa: SIM115 - closed below, across the try
        except OSError:
            raise FailedError("the image file cannot be read") from None
        try:
            with reader, open(temp, "wb") as out:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)  # tells a server's start-up sweep it is in use
                # Header first with a size placeholder, patched once the size is known.
                out.write(IMAGE_HEADER.pack(b"\x1f\x8b", 8, GZIP_FEXTRA, 0, 0, 255, 12, IMAGE_SIZE_ID, 8, 0))
                deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
                crc = size = 0
                while True:
                    try:
                        block = reader.read(self._chunk)
                    except OSError:
                        raise FailedError("the image file cannot be read") from None
                    if not block:
                        break
                    crc = zlib.crc32(block, crc)
                    size += len(block)
                    out.write(deflater.compress(block))
                out.write(deflater.flush())
                out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
                out.seek(IMAGE_HEADER.size - 8)
                out.write(struct.pack("<Q", size))
                out.flush()
                os.fsync(out.fileno())
            self._rename(temp, path)
        except OSError as e:
            raise (no_room() if e.errno in NO_ROOM else FailedError("the image could not be stored")) from None
        finally:
            _unlink(temp)
        return size

    def _image_size(self, path: Path) -> int:
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise MissingError("no such image") from None
        except OSError:
            raise FailedError("the image cannot be read") from None
        with file:
            head = file.read(IMAGE_HEADER.size)
            if len(head) == IMAGE_HEADER.size:
                magic, _, flags, _, _, _, xlen, sub, sublen, size = IMAGE_HEADER.unpack(head)
                if magic == b"\x1f\x8b" and flags & GZIP_FEXTRA and xlen == 12 and sub == IMAGE_SIZE_ID \
                        and sublen == 8:
                    return int(size)
            # A gzip file put there by other means: count its bytes the slow way.
            file.seek(0)
            inflater = Gunzip()
            size = 0
            while block := file.read(self._chunk):
                for out in inflater.inflate(block, self._chunk):
                    size += len(out)
            inflater.finish()
            return size

    # Blocking helpers (run in threads).

    def _create_raw(self, path: Path, size: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise FailedError("the drive already has storage") from None
        except OSError as e:
            raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be created")) from None
        try:
            os.ftruncate(fd, size)  # sparse: no block is allocated until written
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            _unlink(path)
            if e.errno == errno.EFBIG:
                raise FailedError("the pool's file system cannot hold a drive this large") from None
            raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be created")) from None
        os.close(fd)
        _sync_dir(path.parent)

    def _grow_raw(self, path: Path, size: int) -> None:
        fd = _open(path, os.O_WRONLY)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
                os.fsync(fd)
        except OSError as e:
            if e.errno == errno.EFBIG:
                raise FailedError("the pool's file system cannot hold a drive this large") from None
            raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be resized")) from None
        finally:
            os.close(fd)

    def _write_image(self, path: Path, image: Image) -> None:
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

    def _rename(self, temp: Path, path: Path) -> None:
        os.replace(temp, path)
        _sync_dir(path.parent)

    def _check_room(self, need: int) -> None:
        stat = os.statvfs(self.pool_dir)
        if stat.f_bavail * stat.f_frsize < need:
            raise no_room()

    @staticmethod
    def _list(directory: Path, suffixes: tuple[str, ...]) -> set[str]:
        found = set()
        for name in os.listdir(directory):
            stem, dot, suffix = name.partition(".")
            if dot and suffix in suffixes and is_id(stem):
                found.add(stem)
        return found

    async def _run_qemu_img(self, *args: str, secret: bytes | None = None) -> None:
        """qemu-img with args; with a secret, the volume's passphrase is object `key`, read from
        an inherited pipe (after the subcommand, where qemu-img takes --object)."""
        for attempt in range(1, QEMU_IMG_TRIES + 1):
            returncode, err = await self._qemu_img_once(args, secret)
            if not returncode or b"accurate CPU usage" not in err or attempt == QEMU_IMG_TRIES:
                break
        if returncode:
            if b"No space left" in err or b"quota exceeded" in err:
                raise no_room()
            self._log.error("qemu-img %s failed: %s", args[0], err.decode(errors="replace").strip())
            raise FailedError(f"qemu-img {args[0]} failed")

    async def _qemu_img_once(self, args: tuple[str, ...], secret: bytes | None) -> tuple[int | None, bytes]:
        fd = await in_thread(secret_pipe, secret) if secret is not None else None
        try:
            command = [self._qemu_img, args[0]]
            if fd is not None:
                command += ["--object", secret_object(fd)]
            command += args[1:]
            try:
                process = await asyncio.create_subprocess_exec(
                    *command, stdin=asyncio.subprocess.DEVNULL, pass_fds=() if fd is None else (fd,),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            except OSError:
                raise FailedError("qemu-img could not be run") from None
        finally:
            if fd is not None:
                os.close(fd)  # the child has its own copy; the pipe holds the passphrase until read
        communicate = asyncio.ensure_future(process.communicate())
        try:
            # Shielded: qemu-img stopped half-way through a resize could leave a broken image.
            _, err = await asyncio.shield(communicate)
        except asyncio.CancelledError:
            await asyncio.wait([communicate])
            raise
        return process.returncode, err


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


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


def _luks(volume: Volume) -> bool:
    """An encrypted raw volume: a LUKS file, whose holes decrypt to noise."""
    return volume.format == "raw" and volume.encrypted


async def _zeroes(nbd: NbdLanes, start: int, end: int, chunk: int) -> AsyncGenerator[Coroutine[Any, Any, Any], None]:
    for piece_start, piece_end in split(start, end, chunk):
        yield nbd.write_zeroes(piece_start, piece_end - piece_start)


def _check_export(nbd: NbdLanes, volume: Volume) -> None:
    if nbd.size < volume.size:
        raise FailedError("the drive's storage is smaller than the drive")


async def _counted(pieces: AsyncGenerator[Piece, None], total: int,
                   progress: Progress) -> AsyncGenerator[Piece, None]:
    done = 0
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            done += piece if isinstance(piece, int) else len(piece)
            progress(min(done, total), total)
            yield piece


def _write_data(fd: int, pos: int, data: bytes) -> None:
    """Write the data blocks of a piece onto a target that is all holes already."""
    view = memoryview(data)
    for run in zero_runs(data, pos):
        if not run.zero:
            write_all(fd, view[run.start:run.end], pos + run.start)


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedError("the drive has no storage") from None
    except OSError:
        raise FailedError("the drive's storage cannot be opened") from None


def _open_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise MissingError("no such image") from None
    except OSError:
        raise FailedError("the image cannot be read") from None


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise MissingError("no such image") from None


def _sync(fd: int) -> None:
    """fdatasync: the write is answered 204 only once it would survive a power cut."""
    try:
        os.fdatasync(fd)
    except OSError as e:
        raise (no_room() if e.errno in NO_ROOM else FailedError("the drive's storage could not be synced")) from None


def _sync_dir(directory: Path) -> None:
    """A created or renamed file survives a crash only once its directory entry is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _locked(path: Path) -> bool:
    """Whether another open file description holds a lock on path (a live import's temporary)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the description drops our lock
    return False


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _unlink(path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["Pool"]
