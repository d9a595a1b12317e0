"""Pages of a collection: `?limit=N&marker=ID`, ordered by creation time, then ID."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from elastic_api.errors import UsageError
from elastic_api.model.ids import parse_id
from elastic_api.model.units import parse_count


@dataclass(frozen=True)
class Page:
    limit: int | None = None  # None: the whole collection
    marker: str | None = None  # the ID of the last item of the previous page


def parse_page(query: Mapping[str, str], max_limit: int, *, marker_is_id: bool = True) -> Page:
    limit = None
    if "limit" in query:
        limit = parse_count(query["limit"], "limit", minimum=1, maximum=max_limit)
    marker = query.get("marker")
    if marker is not None:
        parsed = parse_id(marker) if marker_is_id else marker.strip()
        if not parsed:
            raise UsageError(f"unknown marker: {marker[:40]}")
        marker = parsed
    return Page(limit, marker)
