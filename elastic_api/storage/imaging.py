"""The imaging pipeline: a source's bytes as pieces (data, or a count of zero bytes for a hole),
counted for progress and gzipped or gunzipped on the way, for a volume kind to write."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from elastic_api.errors import FailedError, MissingError
from elastic_api.storage.base import Progress
from elastic_api.storage.aio import in_thread
from elastic_api.storage.gzipstream import Gunzip, Gzip
from elastic_api.storage.zeros import split

Piece = bytes | int  # guest bytes, or a count of zero bytes (a hole: nothing to read or write)
Pieces = AsyncGenerator[Piece, None]


def piece_length(piece: Piece) -> int:
    return piece if isinstance(piece, int) else len(piece)


async def file_pieces(path: Path, chunk: int) -> Pieces:
    """A stored file's bytes as they are (a standard image's gzip stream)."""
    file = await in_thread(_open_file, path)
    try:
        while data := await in_thread(file.read, chunk):
            yield data
    finally:
        await in_thread(file.close)


async def counted(pieces: Pieces, total: int, progress: Progress) -> Pieces:
    done = 0
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            done += piece_length(piece)
            progress(min(done, total), total)
            yield piece


async def gunzipped(pieces: Pieces, chunk: int) -> Pieces:
    # Lenient end: a drive holding a .gz file has zeros (or old bytes) after it.
    inflater = Gunzip(lenient_end=True)
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if isinstance(piece, int):
                for start, end in split(0, piece, chunk):
                    async for out in _inflate(inflater, bytes(end - start), chunk):
                        yield out
                    if inflater.ended:
                        break
            else:
                async for out in _inflate(inflater, piece, chunk):
                    yield out
            if inflater.ended:
                break  # the rest of the source is not part of the stream: do not read it
    inflater.finish()


async def _inflate(inflater: Gunzip, data: bytes, chunk: int) -> AsyncIterator[bytes]:
    # One thread hop per inflated chunk: a bomb in one input piece still comes out chunk by chunk.
    outputs = inflater.inflate(data, chunk)
    while (out := await in_thread(next, outputs, None)) is not None:
        yield out


async def gzipped(pieces: Pieces, chunk: int) -> Pieces:
    deflater = Gzip()
    out: list[bytes] = []
    size = 0
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if isinstance(piece, bytes):
                inputs = [piece]
            else:
                inputs = [bytes(end - start) for start, end in split(0, piece, chunk)]
            for data in inputs:
                compressed = await in_thread(deflater.deflate, data)
                if compressed:
                    out.append(compressed)
                    size += len(compressed)
                if size >= chunk:
                    yield b"".join(out)
                    out.clear()
                    size = 0
    out.append(deflater.finish())
    yield b"".join(out)


def _open_file(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise MissingError("no such image") from None
    except OSError:
        raise FailedError("the image cannot be read") from None


__all__ = ["Piece", "Pieces", "counted", "file_pieces", "gunzipped", "gzipped", "piece_length"]
