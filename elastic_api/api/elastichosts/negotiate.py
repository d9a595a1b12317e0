"""Output negotiation: what a handler returns, rendered as text/plain or JSON by `Accept`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from elastic_api.api.elastichosts.properties import (
    Info,
    render_json,
    render_list,
    render_properties,
    render_properties_list,
)


@dataclass(frozen=True)
class Properties:
    """One object: `key value` lines, or a JSON object."""

    info: Info


@dataclass(frozen=True)
class ValuesList:
    """Many objects, one line of chosen values each, or a JSON array of objects."""

    rows: Sequence[Info]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class PropertiesList:
    """Many objects with all their keys: blocks separated by a blank line, or a JSON array."""

    infos: Sequence[Info]


class NoContent:
    """204: the command returns nothing."""


Result = Properties | ValuesList | PropertiesList | NoContent | web.StreamResponse


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip().lower() == "application/json" for part in accept.split(","))


def render(request: web.Request, result: Result) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, NoContent):
        return web.Response(status=204)
    as_json = wants_json(request)
    if isinstance(result, Properties):
        shape, data = "properties", result.info
        text = render_json(data) if as_json else render_properties(data)
    elif isinstance(result, ValuesList):
        shape = "list"
        rows = [{c: row[c] for c in result.columns} for row in result.rows]
        text = render_json(rows) if as_json else render_list(rows, result.columns)
    else:
        shape = "properties list"
        text = render_json(list(result.infos)) if as_json else render_properties_list(result.infos)
    return web.Response(
        text=text,
        content_type="application/json" if as_json else "text/plain",
        headers={"X-Elastic-Output": shape},
    )
