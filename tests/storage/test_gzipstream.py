"""The bounded gzip decoder: concatenated members, truncation, trailing bytes, bombs."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from elastic_api.errors import UsageError
from elastic_api.storage.gzipstream import Gunzip, Gzip

MiB = 1 << 20


def inflate(stream: bytes, *, feed: int = 1000, most: int = 64 * 1024, lenient: bool = False) -> bytes:
    inflater = Gunzip(lenient_end=lenient)
    out = []
    for start in range(0, len(stream), feed):
        for piece in inflater.inflate(stream[start : start + feed], most):
            assert 0 < len(piece) <= most
            out.append(piece)
    inflater.finish()
    return b"".join(out)


def test_round_trip_in_tiny_pieces():
    data = os.urandom(100_000) + bytes(300_000) + b"text " * 20_000
    assert inflate(gzip.compress(data), feed=1) == data
    assert inflate(gzip.compress(data), feed=1 << 20) == data


def test_concatenated_members_are_one_stream():
    parts = [os.urandom(5000), bytes(70_000), b"abc"]
    assert inflate(b"".join(gzip.compress(p) for p in parts), feed=777) == b"".join(parts)


def test_a_member_with_an_empty_payload():
    assert inflate(gzip.compress(b"")) == b""
    assert inflate(gzip.compress(b"") + gzip.compress(b"x")) == b"x"


@pytest.mark.parametrize("cut", [1, 5, 10, 30, -8, -1])
def test_truncated_is_malformed(cut):
    stream = gzip.compress(os.urandom(10_000))
    with pytest.raises(UsageError, match="truncated|not valid gzip"):
        inflate(stream[:cut])


@pytest.mark.parametrize("tail", [b"x", b"\x1f", b"\x1f\x8b", b"\0" * 10, b"garbage after the member"])
def test_trailing_bytes_are_malformed(tail):
    with pytest.raises(UsageError):
        inflate(gzip.compress(b"payload") + tail)


@pytest.mark.parametrize("stream", [b"", b"plain text, not gzip", zlib.compress(b"zlib, not gzip")])
def test_not_gzip(stream):
    with pytest.raises(UsageError):
        inflate(stream)


def test_corrupt_crc_is_malformed():
    stream = bytearray(gzip.compress(b"payload" * 100))
    stream[-6] ^= 0xFF
    with pytest.raises(UsageError):
        inflate(bytes(stream))


def test_a_bomb_comes_out_a_bounded_piece_at_a_time():
    bomb = gzip.compress(bytes(256 * MiB), 9)
    assert len(bomb) < 300_000
    inflater = Gunzip()
    pieces = inflater.inflate(bomb, MiB)
    seen = 0
    for piece in pieces:
        assert len(piece) <= MiB
        seen += len(piece)
        if seen >= 8 * MiB:
            break  # the caller stops pulling: nothing more is inflated
    assert seen == 8 * MiB


def test_lenient_end_stops_at_what_follows_the_stream():
    data = os.urandom(50_000)
    for tail in (bytes(100_000), b"old bytes of the drive", b"\x1f", b"\x1fX"):
        assert inflate(gzip.compress(data) + tail, feed=333, lenient=True) == data
    inflater = Gunzip(lenient_end=True)
    assert b"".join(inflater.inflate(gzip.compress(data) + bytes(10), MiB)) == data
    assert inflater.ended
    assert list(inflater.inflate(b"anything", MiB)) == []


def test_lenient_end_still_reads_further_members():
    stream = gzip.compress(b"one") + gzip.compress(b"two") + bytes(4096)
    for feed in (1, 2, 3, 4096):
        assert inflate(stream, feed=feed, lenient=True) == b"onetwo"


def test_lenient_end_still_needs_a_whole_first_member():
    with pytest.raises(UsageError):
        inflate(bytes(1000), lenient=True)
    with pytest.raises(UsageError):
        inflate(gzip.compress(os.urandom(1000))[:-3] + bytes(100), lenient=True)


def test_gzip_round_trip():
    data = os.urandom(10_000) + bytes(1 << 20)
    deflater = Gzip()
    stream = deflater.deflate(data[:5000]) + deflater.deflate(data[5000:]) + deflater.finish()
    assert gzip.decompress(stream) == data
    assert len(stream) < 20_000
