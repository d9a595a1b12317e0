"""Plain raw volumes: sparse files written with pread/pwrite in threads, zeros kept as holes."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from elastic_api.errors import FailedError, FullError
from elastic_api.storage.aio import in_thread, pieces
from elastic_api.storage.fileops import (
    NO_ROOM,
    FileOps,
    has_data,
    no_room,
    open_volume,
    read_exactly,
    sync_data,
    sync_dir,
    unlink_quietly,
    write_all,
)
from elastic_api.storage.imaging import Piece, piece_length
from elastic_api.storage.staging import Staging
from elastic_api.storage.zeros import split, zero_runs


class RawVolumes:
    """The operations of plain raw volumes, given their paths (the pool names the files)."""

    def __init__(self, chunk: int) -> None:
        self._chunk = chunk
        self._ops = FileOps()

    async def create(self, path: Path, size: int) -> None:
        await in_thread(self._create, path, size)

    async def grow(self, path: Path, size: int) -> None:
        await in_thread(self._grow, path, size)

    async def apply(self, path: Path, offset: int, staged: Staging) -> None:
        await in_thread(self._apply, path, offset, staged)

    async def read(self, path: Path, offset: int, end: int) -> AsyncGenerator[bytes, None]:
        fd = await in_thread(open_volume, path, os.O_RDONLY)
        try:
            async for data in pieces(
                offset, end, self._chunk, lambda pos, n: asyncio.to_thread(self._read_piece, fd, pos, n)
            ):
                yield data
        finally:
            os.close(fd)

    async def pieces(self, path: Path, size: int) -> AsyncGenerator[Piece, None]:
        """The volume as imaging pieces: data up to each hole, and the holes as counts."""
        fd = await in_thread(open_volume, path, os.O_RDONLY)
        try:
            pos = 0
            while pos < size:
                piece = await in_thread(self._next_piece, fd, pos, size)
                yield piece
                pos += piece_length(piece)
        finally:
            os.close(fd)

    async def copy_in(self, path: Path, size: int, source: AsyncIterator[Piece]) -> None:
        """Imaging into the volume: it ends up holding the pieces, then zeros."""
        fd = await in_thread(open_volume, path, os.O_RDWR)
        try:
            # Imaging replaces the whole drive: start from all holes, then write only data.
            await in_thread(self._ops.punch, fd, 0, size)
            pos = 0
            async for piece in source:
                n = piece_length(piece)
                if pos + n > size:
                    raise FullError("the image does not fit the drive")
                if isinstance(piece, bytes):
                    await in_thread(_write_data, fd, pos, piece)
                pos += n
            await in_thread(sync_data, fd)
        finally:
            await in_thread(os.close, fd)  # on NFS, closing a written file flushes it

    # Blocking parts (run in threads).

    def _create(self, path: Path, size: int) -> None:
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
            unlink_quietly(path)
            if e.errno == errno.EFBIG:
                raise FailedError("the pool's file system cannot hold a drive this large") from None
            raise (no_room() if e.errno in NO_ROOM else FailedError("the drive could not be created")) from None
        os.close(fd)
        sync_dir(path.parent)

    def _grow(self, path: Path, size: int) -> None:
        fd = open_volume(path, os.O_WRONLY)
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

    def _apply(self, path: Path, offset: int, staged: Staging) -> None:
        """Reserve, then write data and punch zeros, then fdatasync. Out of room shows while
        reserving, when every block still reads as it did (a reserved block reads as before)."""
        fd = open_volume(path, os.O_RDWR)
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
                            write_all(fd, memoryview(data)[sub.start : sub.end], offset + start + sub.start)
            sync_data(fd)
        finally:
            os.close(fd)

    def _read_piece(self, fd: int, pos: int, n: int) -> bytes:
        try:
            if not has_data(fd, pos, pos + n):
                return bytes(n)  # a hole: zeros without touching the disk
        except OSError:
            raise FailedError("the drive's storage could not be read") from None
        return read_exactly(fd, pos, n)

    def _next_piece(self, fd: int, pos: int, end: int) -> Piece:
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


def _write_data(fd: int, pos: int, data: bytes) -> None:
    """Write the data blocks of a piece onto a target that is all holes already."""
    view = memoryview(data)
    for run in zero_runs(data, pos):
        if not run.zero:
            write_all(fd, view[run.start : run.end], pos + run.start)


__all__ = ["RawVolumes"]
