"""What an ElasticHosts handler is given: the authenticated user, its arguments, body and the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from elastic_api.api.elastichosts.properties import Props, parse_body
from elastic_api.http import body
from elastic_api.model.pages import Page, parse_page

if TYPE_CHECKING:
    from elastic_api.config import Config
    from elastic_api.service.services import Services


@dataclass(slots=True)
class Call:
    request: web.Request
    user: str
    services: Services
    config: Config

    def arg(self, name: str) -> str:
        return self.request.match_info[name]

    async def props(self) -> Props:
        """The body's keys: JSON when labelled so, text properties otherwise; empty means none."""
        return parse_body(
            await body.read_small(self.request, self.config), self.request.headers.get("Content-Type", "")
        )

    def body(self) -> AsyncIterator[bytes]:
        """The streamed body (see http.body.stream)."""
        return body.stream(self.request, self.config)

    def page(self) -> Page:
        return parse_page(self.request.query, self.config.max_list_limit)
