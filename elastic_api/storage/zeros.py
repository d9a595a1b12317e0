"""Zero detection: split guest bytes into runs of data and all-zero blocks on the volume's block grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# 4 KiB is the page size and the block size of ext4, XFS and tmpfs: the smallest unit a hole can be,
# so finer detection would find zeros the file system cannot give back anyway.
BLOCK = 4096


@dataclass(frozen=True)
class Run:
    """A stretch [start, end) of a buffer (relative offsets) that is all zero or holds data."""

    start: int
    end: int
    zero: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def zero_runs(buf: bytes | bytearray, position: int, block: int = BLOCK) -> list[Run]:
    """Coalesced runs of `buf`, whose first byte lies at guest offset `position`.

    Blocks are cut on the guest's grid (not the buffer's), so an all-zero run covers whole file system
    blocks wherever the write started; the partial blocks at either end are judged on their own bytes."""
    runs: list[Run] = []
    zero = bytes(block)
    size = len(buf)
    start = 0
    run_start, run_zero = 0, False
    # Slicing and comparing bytes runs in C at memory speed; a Python-level byte loop would not.
    cut = min(size, block - position % block)
    while start < size:
        piece = buf[start:cut]
        is_zero = piece == zero if len(piece) == block else not piece.strip(b"\0")
        if start == 0:
            run_zero = is_zero
        elif is_zero != run_zero:
            runs.append(Run(run_start, start, run_zero))
            run_start, run_zero = start, is_zero
        start, cut = cut, min(size, cut + block)
    if size:
        runs.append(Run(run_start, size, run_zero))
    return runs


def split(start: int, end: int, most: int) -> Iterator[tuple[int, int]]:
    """[start, end) as consecutive pieces of at most `most` bytes."""
    while start < end:
        stop = min(end, start + most)
        yield start, stop
        start = stop
