"""What a handler is given: the authenticated user, its arguments, body and the services."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from elastic_api.errors import SlowClientError, TooLargeError
from elastic_api.model.pages import Page, parse_page
from elastic_api.model.properties import Props, parse_body

if TYPE_CHECKING:
    from elastic_api.app import Services
    from elastic_api.config import Config


@dataclass
class Call:
    request: web.Request
    user: str
    services: Services
    config: Config

    def arg(self, name: str) -> str:
        return self.request.match_info[name]

    async def props(self) -> Props:
        """The body's keys: JSON when labelled so, text properties otherwise; empty means none."""
        if (self.request.content_length or 0) > self.config.max_metadata_body:
            raise TooLargeError(f"body larger than {self.config.max_metadata_body} bytes")
        try:
            async with asyncio.timeout(self.config.body_timeout):
                body = await self.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise TooLargeError(f"body larger than {self.config.max_metadata_body} bytes") from None
        except TimeoutError:
            raise SlowClientError(f"request body not received within {self.config.body_timeout} seconds") from None
        return parse_body(body, self.request.headers.get("Content-Type", ""))

    async def body(self) -> AsyncIterator[bytes]:
        """A streamed body in pieces of at most stream_chunk bytes. A body that goes body_timeout
        seconds without a byte ends in SlowClientError, which cancels whatever consumes it."""
        content, chunk, timeout = self.request.content, self.config.stream_chunk, self.config.body_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    piece = await content.read(chunk)
            except TimeoutError:
                raise SlowClientError(f"request body stalled: no byte for {timeout} seconds") from None
            if not piece:
                return
            yield piece

    def page(self) -> Page:
        return parse_page(self.request.query, self.config.max_list_limit)
