"""A write body held back until it is whole and valid: in memory, or spilled to a sparse anonymous file."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from elastic_api.errors import FullError, TooLargeError
from elastic_api.storage.fileops import NO_ROOM, data_extents, no_room, read_exactly, write_all
from elastic_api.storage.zeros import BLOCK, Run, zero_runs


class Staging:
    """Collects a body's (inflated) bytes before any of them reaches the volume, which is what lets a
    write that runs past the drive's end, is malformed or is too large leave the drive untouched.

    Up to `memory` bytes stay in a buffer (real clients send 1-5 MiB chunks); beyond that the body
    spills to an O_TMPFILE in the pool directory: same file system, so no room is a FullError
    before the drive changed, and it vanishes with its descriptor even if the process dies.
    All-zero blocks are never written to the spill file, so a huge zero body costs no disk.

    Blocking methods: call them from a thread."""

    def __init__(self, spill_dir: Path, position: int, *, room: int, most: int, memory: int) -> None:
        self.length = 0
        self._spill_dir = spill_dir
        self._position = position
        self._room = room
        self._most = most
        self._memory = memory
        self._buf = bytearray()
        self._fd = -1
        # Body byte 0 sits this far into the spill file, keeping the guest's block grid, so the
        # spill file's holes line up with the blocks the volume can give back.
        self._shift = position % BLOCK

    @property
    def spilled(self) -> bool:
        return self._fd >= 0

    def add(self, data: bytes) -> None:
        end = self.length + len(data)
        if end > self._most:
            raise TooLargeError(f"the write inflates past {self._most} bytes")
        if end > self._room:
            raise FullError("the write runs past the end of the drive")
        if self._fd < 0 and end <= self._memory:
            self._buf += data
        else:
            if self._fd < 0:
                self._spill()
            self._write_spill(data, self.length)
        self.length = end

    def finish(self) -> None:
        """The body is complete: size the spill file so every body byte reads back."""
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, self._shift + self.length)
            except OSError as e:
                raise (no_room() if e.errno in NO_ROOM else e) from None

    def runs(self) -> list[Run]:
        """Body-relative stretches of data and zeros. Exact in memory; from a spill file, the data
        runs are the file's allocated extents and may still hold zero blocks (see `exact`)."""
        if self._fd < 0:
            return zero_runs(self._buf, self._position)
        runs: list[Run] = []
        pos = 0
        for start, end in data_extents(self._fd, self._shift, self._shift + self.length):
            start, end = start - self._shift, end - self._shift
            if start > pos:
                runs.append(Run(pos, start, True))
            runs.append(Run(start, end, False))
            pos = end
        if pos < self.length:
            runs.append(Run(pos, self.length, True))
        return runs

    @property
    def exact(self) -> bool:
        """Whether the data runs hold no all-zero block."""
        return self._fd < 0

    def read(self, start: int, end: int) -> bytes | memoryview:
        if self._fd < 0:
            return memoryview(self._buf)[start:end]
        return read_exactly(self._fd, self._shift + start, end - start)

    def close(self) -> None:
        self._buf = bytearray()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _spill(self) -> None:
        try:
            self._fd = os.open(self._spill_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as e:
            if e.errno in NO_ROOM:
                raise no_room() from None
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            # No O_TMPFILE on this file system: a named file, unlinked at once, is the same thing.
            self._fd, name = tempfile.mkstemp(prefix=".spill-", dir=self._spill_dir)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        buf, self._buf = self._buf, bytearray()
        self._write_spill(buf, 0)

    def _write_spill(self, data: bytes | bytearray, pos: int) -> None:
        view = memoryview(data)
        for run in zero_runs(data, self._position + pos):
            if not run.zero:  # zeros stay holes: a fresh file reads as zeros where nothing was written
                write_all(self._fd, view[run.start : run.end], self._shift + pos + run.start)
