"""One ECS request as the handlers see it: the request, its principal, the services and config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from elastic_api.api.ecs.paging import next_link, page, parse_window
from elastic_api.config import Config
from elastic_api.errors import Invalid, NotFound
from elastic_api.model.token import Principal
from elastic_api.service.services import Services

T = TypeVar("T")
Wire = dict[str, Any]


@dataclass(frozen=True)
class Call:
    request: web.Request
    principal: Principal | None  # None on public routes only
    services: Services
    config: Config

    @property
    def user(self) -> str:
        assert self.principal is not None, "a public route asked for its caller"
        return self.principal.user

    @property
    def group(self) -> str | None:
        """The group the caller's token is confined to (a Huawei sub-project), if any."""
        return self.principal.group if self.principal else None

    def number(self, key: str) -> int:
        """A numeric id from the path; a path naming no number names nothing (404)."""
        text = self.request.match_info[key]
        if not (text.isascii() and text.isdigit() and len(text) < 19):
            raise NotFound(f"no such {key}: {text[:40]}")
        return int(text)

    def listing(
        self, name: str, items: Sequence[T], key: Callable[[T], str], render: Callable[[T], Wire], **extra: Any
    ) -> Wire:
        """`{"status": "ok", NAME: [...]}` for one page of `items`, with `next` unless it is the last."""
        query = self.request.query
        for word in ("limit", "marker"):
            if len(query.getall(word, [])) > 1:
                raise Invalid(f"{word} given twice")
        window = parse_window(query, self.config.max_list_limit)
        chunk, last = page(items, key, window)
        body: Wire = {"status": "ok", name: [render(item) for item in chunk], **extra}
        if last is not None and window.limit is not None:
            body["next"] = next_link(self.request.path, query, window.limit, last)
        return body
