"""What a handler is given: the authenticated user, its arguments, body and the services."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from elastic_api.errors import TooLargeError
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
            body = await self.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise TooLargeError(f"body larger than {self.config.max_metadata_body} bytes") from None
        return parse_body(body, self.request.headers.get("Content-Type", ""))

    def page(self) -> Page:
        return parse_page(self.request.query, self.config.max_list_limit)
