"""`/actions`: the caller's actions, newest first, with Seeweb's offset paging (`start`,
`length`) or this dialect's (`limit`, `marker`), never both; and `/actions/{id}`."""

from __future__ import annotations

from elastic_api.api.ecs import server_codec as codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.errors import Invalid

DEFAULT_LENGTH = 50  # Seeweb's default page, what ecsapi always asks for


def _whole(query: dict[str, str], key: str, default: int, lowest: int, highest: int) -> int:
    if key not in query:
        return default
    text = query[key].strip()
    if not (text.isascii() and text.isdigit() and len(text) < 10 and lowest <= int(text) <= highest):
        raise Invalid(f"{key} must be a whole number from {lowest} to {highest}")
    return int(text)


async def list_actions(call: Call) -> Wire:
    query = call.request.query
    for word in ("start", "length", "resource"):
        if len(query.getall(word, [])) > 1:
            raise Invalid(f"{word} given twice")
    offset = any(k in query for k in ("start", "length"))
    if offset and any(k in query for k in ("limit", "marker")):
        raise Invalid("page with start and length, or with limit and marker, not both")
    resource = query.get("resource")
    actions = await call.services.ecs.list_actions(call.user, call.group, resource)
    total = len(actions)
    if not offset and any(k in query for k in ("limit", "marker")):
        body = call.listing("actions", actions, lambda a: str(a.id), codec.action)
        body["total_actions"] = total
        return body
    plain = {k: query[k] for k in query}
    start = _whole(plain, "start", 0, 0, 2**31)
    length = _whole(plain, "length", DEFAULT_LENGTH, 1, call.config.max_list_limit)
    return {
        "status": "ok",
        "actions": [codec.action(a) for a in actions[start : start + length]],
        "total_actions": total,
    }


async def get_action(call: Call) -> Wire:
    job = await call.services.ecs.get_action(call.user, call.group, call.number("id"))
    return {"status": "ok", "action": codec.action(job)}
