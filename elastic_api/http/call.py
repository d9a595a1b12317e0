"""What a handler is given: the authenticated user, its arguments, body and the services."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import HttpVersion11, web

from elastic_api.errors import SlowClientError, TooLargeError
from elastic_api.model.pages import Page, parse_page
from elastic_api.model.properties import Props, parse_body

if TYPE_CHECKING:
    from elastic_api.app import Services
    from elastic_api.config import Config


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Call:
    request: web.Request
    user: str
    services: Services
    config: Config
    continued: bool = False

    def arg(self, name: str) -> str:
        return self.request.match_info[name]

    async def props(self) -> Props:
        """The body's keys: JSON when labelled so, text properties otherwise; empty means none."""
        if (self.request.content_length or 0) > self.config.max_metadata_body:
            raise TooLargeError(f"body larger than {self.config.max_metadata_body} bytes")
        self.go_on()
        try:
            async with asyncio.timeout(self.config.body_timeout):
                body = await self.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise TooLargeError(f"body larger than {self.config.max_metadata_body} bytes") from None
        except TimeoutError:
            raise SlowClientError(f"request body not received within {self.config.body_timeout} seconds") from None
        return parse_body(body, self.request.headers.get("Content-Type", ""))

    def go_on(self) -> None:
        """100 Continue to a client that waits for it before sending its body, now that the
        request passed authentication and its checks (see routes.expect_later)."""
        request = self.request
        if (self.continued or request.version != HttpVersion11 or not request.content_length
                or request.headers.get("Expect", "").strip().lower() != "100-continue"):
            return
        self.continued = True
        if request.transport is not None and not request.transport.is_closing():
            # Straight to the socket: an interim answer is not the answer's head or body.
            request.transport.write(CONTINUE)

    async def body(self) -> AsyncIterator[bytes]:
        """A streamed body in pieces of at most stream_chunk bytes. It ends in SlowClientError,
        which cancels whatever consumes it, when body_timeout seconds pass without a byte, or when
        after body_rate_grace seconds of waiting the body averages under min_body_rate bytes a
        second. Only time spent waiting for the client counts: while a slow disk holds us up, the
        client's bytes gather in the buffer and reads of them return at once."""
        content, chunk, timeout = self.request.content, self.config.stream_chunk, self.config.body_timeout
        rate, grace = self.config.min_body_rate, self.config.body_rate_grace
        loop = asyncio.get_running_loop()
        waited, received = 0.0, 0
        self.go_on()
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
                    raise SlowClientError(f"request body too slow: {received} bytes in {waited + limit:.0f} "
                                          f"seconds, under the minimum of {rate} bytes a second") from None
                raise SlowClientError(f"request body stalled: no byte for {timeout} seconds") from None
            waited += loop.time() - began
            if not piece:
                return
            received += len(piece)
            yield piece

    def page(self) -> Page:
        return parse_page(self.request.query, self.config.max_list_limit)
