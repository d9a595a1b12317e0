"""Request bodies for every dialect: small ones read whole within their limits, large ones
streamed with a minimum rate, and `100 Continue` sent only once a request passed its checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import HttpVersion11, web

from elastic_api.config import Config
from elastic_api.errors import TooLarge, TooSlow

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Whether 100 Continue went out for a request (it may be asked for once per request).
CONTINUED = "elastic_api.continued"


def go_on(request: web.Request) -> None:
    """100 Continue to a client that waits for it before sending its body, now that the request
    passed authentication and its checks (see routes.expect_later)."""
    if (
        request.version != HttpVersion11
        or not request.content_length
        or request.headers.get("Expect", "").strip().lower() != "100-continue"
        or request.get(CONTINUED)
    ):
        return
    request[CONTINUED] = True
    if request.transport is not None and not request.transport.is_closing():
        # Straight to the socket: an interim answer is not the answer's head or body.
        request.transport.write(CONTINUE)


async def read_small(request: web.Request, config: Config) -> bytes:
    """A metadata body, whole: at most max_metadata_body bytes within body_timeout seconds."""
    if (request.content_length or 0) > config.max_metadata_body:
        raise TooLarge(f"body larger than {config.max_metadata_body} bytes")
    go_on(request)
    try:
        async with asyncio.timeout(config.body_timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"body larger than {config.max_metadata_body} bytes") from None
    except TimeoutError:
        raise TooSlow(f"request body not received within {config.body_timeout} seconds") from None


async def stream(request: web.Request, config: Config) -> AsyncIterator[bytes]:
    """A streamed body in pieces of at most stream_chunk bytes. It ends in TooSlow, which cancels
    whatever consumes it, when body_timeout seconds pass without a byte, or when after
    body_rate_grace seconds of waiting the body averages under min_body_rate bytes a second. Only
    time spent waiting for the client counts: while a slow disk holds us up, the client's bytes
    gather in the buffer and reads of them return at once."""
    content, chunk, timeout = request.content, config.stream_chunk, config.body_timeout
    rate, grace = config.min_body_rate, config.body_rate_grace
    loop = asyncio.get_running_loop()
    waited, received = 0.0, 0
    go_on(request)
    while True:
        # The average falls under the minimum once waited passes received / rate.
        allowed = max(grace, received / rate) - waited if rate else float(timeout)
        limit = max(0.0, min(float(timeout), allowed))
        began = loop.time()
        try:
            async with asyncio.timeout(limit):
                piece = await content.read(chunk)
        except TimeoutError:
            if allowed < timeout:
                raise TooSlow(
                    f"request body too slow: {received} bytes in {waited + limit:.0f} "
                    f"seconds, under the minimum of {rate} bytes a second"
                ) from None
            raise TooSlow(f"request body stalled: no byte for {timeout} seconds") from None
        waited += loop.time() - began
        if not piece:
            return
        received += len(piece)
        yield piece
