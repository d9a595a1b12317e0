"""Output negotiation: what a handler returns, rendered as text/plain or JSON by `Accept`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class Described(NamedTuple):
    """One object as an immutable value and the pure function that gives its properties (a
    drive row from the store's cache and to_info): answered as Properties, and described and
    rendered once per value and format while it is the one served (RenderedTexts). A named
    tuple: one is made per `info`, and a frozen dataclass sets each field through a call."""

    source: object
    describe: Callable[[Any], Info]


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


Result = Properties | Described | ValuesList | PropertiesList | NoContent | web.StreamResponse


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if "json" not in accept.lower():
        return False
    return any(part.split(";")[0].strip().lower() == "application/json" for part in accept.split(","))


class RenderedTexts:
    """The bodies of Described results by their source's identity and the format: a drive whose
    row has not changed is described, rendered and encoded once, not at every `info`. Each entry
    holds its source, so that an identity is never reused while it is remembered; at most `limit`
    entries (the oldest are forgotten first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._bodies: dict[tuple[int, bool], tuple[object, bytes]] = {}

    def body(self, result: Described, as_json: bool) -> bytes:
        source = result.source
        if self.limit <= 0:
            return _properties_body(result.describe(source), as_json)
        key = (id(source), as_json)
        known = self._bodies.get(key)
        if known is not None and known[0] is source:
            return known[1]
        body = _properties_body(result.describe(source), as_json)
        if len(self._bodies) >= self.limit:
            del self._bodies[next(iter(self._bodies))]
        self._bodies[key] = (source, body)
        return body


def _properties_body(info: Info, as_json: bool) -> bytes:
    return (render_json(info) if as_json else render_properties(info)).encode()


_UNREMEMBERED = RenderedTexts(0)
# The heads of each shape and format, made once (aiohttp copies them into each answer's own).
_HEADS = {
    (shape, as_json): {
        "Content-Type": "application/json; charset=utf-8" if as_json else "text/plain; charset=utf-8",
        "X-Elastic-Output": shape,
    }
    for shape in ("properties", "list", "properties list")
    for as_json in (False, True)
}


def render(request: web.Request, result: Result, texts: RenderedTexts = _UNREMEMBERED) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, NoContent):
        return web.Response(status=204)
    as_json = wants_json(request)
    if isinstance(result, Described):
        return web.Response(body=texts.body(result, as_json), headers=_HEADS["properties", as_json])
    if isinstance(result, Properties):
        return web.Response(body=_properties_body(result.info, as_json), headers=_HEADS["properties", as_json])
    if isinstance(result, ValuesList):
        shape = "list"
        if as_json:
            text = render_json([{c: row[c] for c in result.columns} for row in result.rows])
        else:
            text = render_list(result.rows, result.columns)  # reads the columns only
    else:
        shape = "properties list"
        text = render_json(list(result.infos)) if as_json else render_properties_list(result.infos)
    return web.Response(body=text.encode(), headers=_HEADS[shape, as_json])
