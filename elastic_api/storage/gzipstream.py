"""Bounded streaming gzip: inflate concatenated members a piece at a time, and deflate."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from elastic_api.errors import UsageError

# wbits for zlib: a gzip header and trailer around the deflate data, 32 KiB window.
GZIP_WBITS = 16 + zlib.MAX_WBITS
GZIP_MAGIC = b"\x1f\x8b"


class Gunzip:
    """Inflates a gzip stream fed in arbitrary pieces, never producing more than `most` bytes per
    output piece, so a small bomb cannot make a large buffer (the caller counts and caps the total).

    Concatenated members are one stream, as gzip(1) reads them. With `lenient_end` the stream ends at
    the first complete member followed by anything but another member (a drive holding a .gz file
    carries zeros or old bytes after it); otherwise such trailing bytes are malformed input."""

    def __init__(self, *, lenient_end: bool = False) -> None:
        self._lenient_end = lenient_end
        self._member: zlib._Decompress | None = None
        self._members = 0
        self._held = b""  # a lone first magic byte of a possible next member (lenient mode)
        self.ended = False  # lenient mode: the stream is over; further input is ignored

    def inflate(self, data: bytes, most: int) -> Iterator[bytes]:
        """Feed `data`; yield its inflated bytes in pieces of at most `most` bytes."""
        buf = self._held + data if self._held else data
        self._held = b""
        while not self.ended:
            if self._member is None:
                if not buf:
                    return
                if self._lenient_end and self._members:
                    if buf[:1] != GZIP_MAGIC[:1] or (len(buf) > 1 and buf[:2] != GZIP_MAGIC):
                        self.ended = True
                        return
                    if len(buf) == 1:
                        self._held = buf
                        return
                self._member = zlib.decompressobj(GZIP_WBITS)
            member = self._member
            try:
                out = member.decompress(buf, most)
            except zlib.error:
                raise UsageError("the body is not valid gzip") from None
            if out:
                yield out
            if member.eof:
                self._members += 1
                self._member = None
                buf = member.unused_data
                continue
            buf = member.unconsumed_tail
            # A full output piece may leave inflated bytes inside zlib even with no input left.
            if not buf and len(out) < most:
                return

    def finish(self) -> None:
        """The input is over: a member cut short, or no member at all, is malformed."""
        if self._member is not None or (self._held and not self._lenient_end):
            raise UsageError("the gzip body is truncated")
        if not self._members:
            raise UsageError("the body is not valid gzip: it is empty")


class Gzip:
    """Deflates a stream into one gzip member, handing back output as it accumulates."""

    def __init__(self, level: int = 6) -> None:
        # Level 6 is gzip(1)'s default: most of level 9's ratio at a fraction of its time.
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)

    def deflate(self, data: bytes) -> bytes:
        return self._deflate.compress(data)

    def finish(self) -> bytes:
        return self._deflate.flush()
