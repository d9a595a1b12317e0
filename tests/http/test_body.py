"""http.body.stream's minimum rate: only time spent waiting for the client counts against it."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest
from aiohttp import HttpVersion11
from multidict import CIMultiDict

from elastic_api.config import Config
from elastic_api.errors import SlowClientError
from elastic_api.http.body import stream


def body_of(content: asyncio.StreamReader, **limits: int):
    request = SimpleNamespace(
        content=content, version=HttpVersion11, content_length=None, headers=CIMultiDict(), transport=None
    )
    return stream(request, dataclasses.replace(Config(), **limits))  # type: ignore[arg-type]


async def test_a_trickle_is_too_slow_once_the_grace_has_passed():
    content = asyncio.StreamReader()
    body = body_of(content, min_body_rate=1000, body_rate_grace=1, body_timeout=30)

    async def trickle() -> None:
        while True:
            content.feed_data(b"x")
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(trickle())
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        with pytest.raises(SlowClientError, match="too slow"):
            async for _ in body:
                pass
    finally:
        feeder.cancel()
    assert 0.9 <= loop.time() - began < 5  # the grace, not body_timeout


async def test_time_our_side_spends_does_not_count_against_the_client():
    content = asyncio.StreamReader()
    content.feed_data(b"y" * 300)
    content.feed_eof()
    # stream_chunk 100: three pieces, each already buffered when asked for.
    body = body_of(content, min_body_rate=1000, body_rate_grace=1, body_timeout=30, stream_chunk=100)
    pieces = []
    async for piece in body:
        pieces.append(piece)
        await asyncio.sleep(0.8)  # a slow disk on our side: 2.4 s for 300 bytes, far under 1000 bytes/s
    assert b"".join(pieces) == b"y" * 300


async def test_no_minimum_leaves_only_the_gap_between_bytes():
    content = asyncio.StreamReader()
    body = body_of(content, min_body_rate=0, body_timeout=1)
    content.feed_data(b"z")
    assert await body.__anext__() == b"z"
    with pytest.raises(SlowClientError, match="stalled"):
        await body.__anext__()
