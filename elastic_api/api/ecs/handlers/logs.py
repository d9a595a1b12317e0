"""`/logs`: the caller's audit trail, newest first. Paged like /actions, by `start` (offset,
default 0) and `length` (default 50), or like every other list by `limit` and `marker` (an
entry's id); both at once is a 400. `resource` keeps only the calls about that object (a
server name, a key or group id, or an ElasticHosts UUID). A token confined to a group sees only
the calls made with that group's tokens."""

from __future__ import annotations

import dataclasses

from elastic_api.api.ecs import records
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.paging import next_link, parse_window
from elastic_api.errors import Invalid
from elastic_api.model.audit import AuditQuery

DEFAULT_LENGTH = 50  # Seeweb's default page, what ecsapi sends for /actions


def _whole(text: str, name: str, low: int, high: int) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) < 10 and low <= int(text) <= high):
        raise Invalid(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def parse_query(call: Call) -> AuditQuery:
    query = call.request.query
    for word in ("start", "length", "limit", "marker", "resource"):
        if len(query.getall(word, [])) > 1:
            raise Invalid(f"{word} given twice")
    offsets = "start" in query or "length" in query
    if offsets and ("limit" in query or "marker" in query):
        raise Invalid("page with start and length, or with limit and marker, not both")
    resource = query.get("resource")
    if resource is not None and not resource.strip():
        raise Invalid("resource must name an object")
    target = resource.strip() if resource is not None else None
    group = call.group
    maximum = call.config.max_list_limit
    if "limit" in query or "marker" in query:
        window = parse_window(query, maximum)
        before = None
        if window.marker is not None:
            if not (window.marker.isascii() and window.marker.isdigit() and len(window.marker) < 19):
                raise Invalid(f"unknown marker: {window.marker[:40]}")
            before = int(window.marker)
        return AuditQuery(target=target, before=before, limit=window.limit, group=group)
    start = _whole(query.get("start", "0"), "start", 0, 10**9)
    length = _whole(query.get("length", str(DEFAULT_LENGTH)), "length", 1, maximum)
    return AuditQuery(target=target, offset=start, limit=length, group=group)


async def list_logs(call: Call) -> Wire:
    query = parse_query(call)
    by_marker = "limit" in call.request.query
    if by_marker and query.limit is not None:  # one more than the page: whether a next page exists
        query = dataclasses.replace(query, limit=query.limit + 1)
    total, entries = await call.services.audit.page(call.user, query)
    body: Wire = {"status": "ok", "total_logs": total}
    if by_marker and query.limit is not None and len(entries) == query.limit:
        entries = entries[:-1]
        body["next"] = next_link(call.request.path, call.request.query, query.limit - 1, str(entries[-1].id))
    body["logs"] = [records.log_entry(e) for e in entries]
    return body


async def get_log(call: Call) -> Wire:
    entry = await call.services.audit.get(call.user, call.number("id"), group=call.group)
    return {"status": "ok", "log": records.log_entry(entry)}
