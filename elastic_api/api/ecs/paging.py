"""Pages of a list (ECS.md §8): `limit` (1 … max_list_limit) and `marker` (the id of the last
item of the previous page); a page that is not the last names the next one in `next`."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from elastic_api.errors import Invalid

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    limit: int | None = None  # None: the whole list (no ECS client pages)
    marker: str | None = None


def parse_window(query: Mapping[str, str], max_limit: int) -> Window:
    limit = None
    if "limit" in query:
        text = query["limit"].strip()
        if not (text.isascii() and text.isdigit() and len(text) < 10 and 1 <= int(text) <= max_limit):
            raise Invalid(f"limit must be a whole number from 1 to {max_limit}")
        limit = int(text)
    marker = query.get("marker")
    if marker is not None and not marker.strip():
        raise Invalid("marker must name the last item of the previous page")
    return Window(limit, marker.strip() if marker is not None else None)


def page(items: Sequence[T], key: Callable[[T], str], window: Window) -> tuple[list[T], str | None]:
    """The page of `items` (already in the list's order) after the marker, and the marker of the
    next page (None on the last). An unknown marker, or another user's, is a 400 (Huawei's rule)."""
    start = 0
    if window.marker is not None:
        keys = [key(item) for item in items]
        if window.marker not in keys:
            raise Invalid(f"unknown marker: {window.marker[:40]}")
        start = keys.index(window.marker) + 1
    if window.limit is None:
        return list(items[start:]), None
    chunk = list(items[start : start + window.limit])
    more = start + window.limit < len(items)
    return chunk, (key(chunk[-1]) if more and chunk else None)


def next_link(path: str, query: Mapping[str, str], limit: int, marker: str) -> str:
    """The next page's path and query: the same filters, the new marker."""
    kept = [(k, v) for k, v in query.items() if k not in ("limit", "marker")]
    return f"{path}?{urllib.parse.urlencode([*kept, ('limit', str(limit)), ('marker', marker)])}"
