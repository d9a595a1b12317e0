"""Chunked transfers with several chunks in flight and a resume offset that is always safe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
# A zero run shorter than one filesystem block cannot become a hole; not worth a separate write.
ZERO_BLOCK = 4096
# Zero runs are followed in steps of this much (one memcmp each) before the last bytes are scanned.
ZERO_STRIDE = 64 * 1024
NONZERO = re.compile(rb"[^\x00]")


class ChunkFailed(Exception):
    """The chunk at `offset` failed for good (its retries are spent); `cause` says why."""

    def __init__(self, offset: int, cause: BaseException) -> None:
        self.offset, self.cause = offset, cause
        super().__init__(f"chunk at offset {offset}: {cause}")


class Transfer(Generic[T]):
    """Every chunk of [start, end) through `fetch`, `parallel` at a time; results reach `commit`
    in offset order.

    `resume` is the lowest offset whose chunk is not committed yet: every byte before it is done,
    whatever order the chunks finished in, so restarting there is always safe. `window` bounds how
    far (in chunks) fetching may run ahead of it, which bounds the results held in memory.
    """

    def __init__(self, start: int, end: int, chunk: int, *, parallel: int, window: int | None = None) -> None:
        if chunk <= 0 or parallel <= 0:
            raise ValueError("chunk and parallel must be positive")
        self.start, self.end, self.chunk, self.parallel = start, end, chunk, parallel
        self.window = None if window is None else max(window, parallel) * chunk
        self.resume = start

    async def run(
        self, fetch: Callable[[int, int], Awaitable[T]], commit: Callable[[int, int, T], Awaitable[None]] | None = None
    ) -> None:
        pending: dict[asyncio.Task[T], tuple[int, int]] = {}
        finished: dict[int, tuple[int, T]] = {}
        offset = self.start
        try:
            while True:
                while (
                    offset < self.end
                    and len(pending) < self.parallel
                    and (self.window is None or offset - self.resume < self.window)
                ):
                    length = min(self.chunk, self.end - offset)
                    pending[asyncio.ensure_future(fetch(offset, length))] = (offset, length)
                    offset += length
                if not pending:
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: pending[t][0]):
                    at, length = pending.pop(task)
                    error = task.exception()
                    if error is not None:
                        raise ChunkFailed(at, error) from error
                    finished[at] = (length, task.result())
                while self.resume in finished:
                    length, result = finished.pop(self.resume)
                    if commit is not None:
                        await commit(self.resume, length, result)
                    self.resume += length
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def is_zero(data: bytes | memoryview) -> bool:
    return len(data) == 0 or (data[0] == 0 and data == bytes(len(data)))


def _zero_end(data: bytes, at: int) -> int:
    """Where the zero run containing `at` ends."""
    stride, block = bytes(ZERO_STRIDE), bytes(ZERO_BLOCK)
    while data[at : at + ZERO_STRIDE] == stride:
        at += ZERO_STRIDE
    while data[at : at + ZERO_BLOCK] == block:
        at += ZERO_BLOCK
    found = NONZERO.search(data, at)
    return found.start() if found else len(data)


def data_runs(data: bytes, minimum: int = ZERO_BLOCK) -> list[tuple[int, int]]:
    """The (start, end) ranges of `data` left when zero runs of at least `minimum` bytes are cut out."""
    runs: list[tuple[int, int]] = []
    zeros = bytes(minimum)
    position = 0
    while position < len(data):
        # bytes.find skips through random data far faster than any byte-wise scan.
        hole = data.find(zeros, position)
        if hole < 0:
            break
        if hole > position:
            runs.append((position, hole))
        position = _zero_end(data, hole + minimum)
    else:
        return runs
    runs.append((position, len(data)))
    return runs
