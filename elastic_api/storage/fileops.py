"""Blocking file primitives for sparse volumes: reserve, punch holes, find data, write fully."""

from __future__ import annotations

import ctypes
import errno
import os

from elastic_api.errors import FailedError, FullError

# From <linux/falloc.h>.
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# Errors that mean "the pool (or the user's quota on it) has no room".
NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


def no_room() -> FullError:
    return FullError("the drive pool has no room for this write")


class FileOps:
    """fallocate(2) through libc: os.posix_fallocate cannot punch holes, and where the file system
    lacks fallocate glibc emulates it by writing a zero byte into each block, which could overwrite
    a concurrent write's data. The raw call refuses instead, and then we simply do not reserve."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fallocate = libc.fallocate
        self._fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        self._fallocate.restype = ctypes.c_int

    def _call(self, fd: int, mode: int, offset: int, length: int) -> int:
        """0, or the errno; EINTR is retried (a signal arriving mid-allocation is not an error)."""
        while True:
            if self._fallocate(fd, mode, offset, length) == 0:
                return 0
            error = ctypes.get_errno()
            if error != errno.EINTR:
                return error

    def reserve(self, fd: int, offset: int, length: int) -> None:
        """Allocate blocks for [offset, offset+length) without changing what they read as, so that
        running out of room shows here, before any byte of the volume has changed."""
        if length <= 0:
            return
        error = self._call(fd, 0, offset, length)
        if error in NO_ROOM:
            raise no_room()
        if error not in (0, errno.EOPNOTSUPP, errno.ENOSYS):
            raise FailedError("the drive's storage refused to allocate space")

    def punch(self, fd: int, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zeros, giving whole blocks back to the file system.
        Partial blocks at the ends are zeroed in place by the kernel."""
        if length <= 0 or not has_data(fd, offset, offset + length):
            return  # already a hole: the common case for a fresh upload, and free to skip
        error = self._call(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
        if error == 0:
            return
        if error not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise (no_room() if error in NO_ROOM else FailedError("the drive's storage refused a write"))
        # A file system without hole punching still reads back right with written zeros.
        zeros = bytes(min(length, 1 << 20))
        end = offset + length
        while offset < end:
            n = min(len(zeros), end - offset)
            write_all(fd, memoryview(zeros)[:n], offset)
            offset += n


def has_data(fd: int, start: int, end: int) -> bool:
    """Whether any byte of [start, end) is allocated (not a hole)."""
    try:
        return os.lseek(fd, start, os.SEEK_DATA) < end
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False  # no data at all from start to the end of the file
        if e.errno == errno.EINVAL:
            return True  # no SEEK_DATA on this file system: assume data
        raise


def data_extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The allocated stretches within [start, end), as the file system reports them."""
    extents: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            if e.errno == errno.EINVAL:
                return [(start, end)]
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        extents.append((data, hole))
        pos = hole
    return extents


def write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """pwrite until every byte is down (pwrite may write less); no room → FullError."""
    view = memoryview(data)
    while view:
        try:
            n = os.pwrite(fd, view, offset)
        except OSError as e:
            if e.errno in NO_ROOM:
                raise no_room() from None
            raise FailedError("the drive's storage refused a write") from None
        view = view[n:]
        offset += n


def read_exactly(fd: int, offset: int, length: int) -> bytes:
    """pread `length` bytes; a file shorter than its volume is storage gone wrong, not zeros."""
    parts: list[bytes] = []
    got = 0
    while got < length:
        try:
            more = os.pread(fd, length - got, offset + got)
        except OSError:
            raise FailedError("the drive's storage could not be read") from None
        if not more:
            raise FailedError("the drive's storage is shorter than the drive")
        if got == 0 and len(more) == length:
            return more
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def open_to_send(path: str, offset: int, length: int) -> int:
    """The file's descriptor (the caller closes it), opened to send [offset, offset+length) with
    sendfile, its reading already asked of the disk in one go: the kernel's own read-ahead grows
    its window step by step, which leaves a cold, large read waiting on the disk in small pieces.
    A bare descriptor: a Python file object costs three more system calls on every read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # advice only: a file system without it is still read correctly
    return fd


def open_volume(path: str | os.PathLike[str], flags: int) -> int:
    """A volume file's descriptor; a missing or unopenable file is the drive's failure."""
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedError("the drive has no storage") from None
    except OSError:
        raise FailedError("the drive's storage cannot be opened") from None


def sync_data(fd: int) -> None:
    """fdatasync: a write is answered 204 only once it would survive a power cut."""
    try:
        os.fdatasync(fd)
    except OSError as e:
        raise (no_room() if e.errno in NO_ROOM else FailedError("the drive's storage could not be synced")) from None


def sync_dir(directory: str | os.PathLike[str]) -> None:
    """A created or renamed file survives a crash only once its directory entry is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_synced(temp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename temp over path, durably."""
    os.replace(temp, path)
    sync_dir(os.path.dirname(os.fspath(path)))


def unlink_quietly(path: str | os.PathLike[str]) -> None:
    """Remove path; one already gone is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
