"""How ElasticHosts spells what every object shares: a client's own keys are `user:NAME`, and
lists of objects are space-separated UUIDs. The rules for the values themselves (control
characters, lengths) are the neutral ones in model/fields.py."""

from __future__ import annotations

from elastic_api.api.elastichosts.properties import words
from elastic_api.errors import UsageError
from elastic_api.model.ids import ALL_USERS, parse_id

USER_PREFIX = "user:"


def is_user_key(key: str) -> bool:
    """A client's own key, `user:` and a name (the key's characters are checked with every key)."""
    return key.startswith(USER_PREFIX) and len(key) > len(USER_PREFIX)


def one_of(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{key} must be one of {', '.join(allowed)}")
    return value


def ids(key: str, value: str, limit: int, *, allow_all: bool = False) -> tuple[str, ...]:
    """A list of UUIDs, canonical, each once, at most `limit` of them; the all-users UUID only
    where `allow_all` (sharing with everyone), never where real objects must be named."""
    result: list[str] = []
    for word in words(value)[: limit + 1]:
        parsed = parse_id(word)
        if parsed is None:
            raise UsageError(f"{key} must be a list of UUIDs: {word[:40]!r}")
        if parsed == ALL_USERS and not allow_all:
            raise UsageError(f"{key} must name real objects")
        if parsed not in result:
            result.append(parsed)
    if len(result) > limit:
        raise UsageError(f"{key} holds more than {limit} entries")
    return tuple(result)
