"""Per-user quotas: the limits, parsing `key=value` assignments, and which limit a change would pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from elastic_api.errors import UsageError
from elastic_api.model.units import parse_count, parse_size

# The keys, in the order they are shown; each with what it counts and how its values are written.
KEYS = ("drive_bytes", "drives", "servers", "cpu", "mem", "ips")
WHAT = {
    "drive_bytes": "drive bytes",  # sum of the user's drives' sizes; k/M/G/T suffixes
    "drives": "drives",  # how many drives the user owns
    "servers": "servers",  # how many servers, stopped or active
    "cpu": "cpu of active servers",  # MHz, the sum of active servers' `cpu`
    "mem": "mem of active servers",  # MB, the sum of active servers' `mem`
    "ips": "ips",  # IP resources the user holds
}
UNITS = {"cpu": " MHz", "mem": " MB"}
UNLIMITED = "unlimited"
# What an override is set back to, so the user follows the configured default again.
DEFAULT = "default"


@dataclass(frozen=True)
class Quota:
    """A user's limits; None is unlimited. Zero is a real limit: none allowed."""

    drive_bytes: int | None = None
    drives: int | None = None
    servers: int | None = None
    cpu: int | None = None
    mem: int | None = None
    ips: int | None = None

    def with_overrides(self, overrides: Mapping[str, int | None]) -> Quota:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if k in KEYS})


@dataclass(frozen=True)
class Usage:
    """What a user holds now (or what a command would add), in the quota's units."""

    drive_bytes: int = 0
    drives: int = 0
    servers: int = 0
    cpu: int = 0
    mem: int = 0
    ips: int = 0


def combined(a: Usage, b: Usage, sign: int = 1) -> Usage:
    """a plus b (or minus b, with sign -1), key by key."""
    return Usage(**{key: getattr(a, key) + sign * getattr(b, key) for key in KEYS})


def parse_value(key: str, value: str | int | None) -> int | None:
    """One limit: `unlimited` (or YAML null) is no limit; drive_bytes takes k/M/G/T; the rest
    are whole numbers in their own units (cpu in MHz, mem in MB)."""
    if key not in KEYS:
        raise UsageError(f"unknown quota key: {str(key)[:40]} (known: {', '.join(KEYS)})")
    if value is None or (isinstance(value, str) and value.strip().lower() == UNLIMITED):
        return None
    if key == "drive_bytes":
        return parse_size(value, key)
    return parse_count(value, key)


def parse_mapping(data: Mapping[str, object]) -> dict[str, int | None]:
    """The config's `quotas:` mapping."""
    parsed = {}
    for key, value in data.items():
        if value is not None and not isinstance(value, (str, int)):
            raise UsageError(f"quota {key} must be a number or {UNLIMITED}")
        parsed[str(key)] = parse_value(str(key), value)
    return parsed


def parse_assignments(words: Iterable[str]) -> dict[str, int | str | None]:
    """`key=value` words from the command line; a value of `default` removes the override."""
    parsed: dict[str, int | str | None] = {}
    for word in words:
        key, equals, value = word.partition("=")
        key = key.strip()
        if not equals or not value.strip():
            raise UsageError(f"expected key=value, not {word[:60]!r}")
        if key not in KEYS:
            raise UsageError(f"unknown quota key: {key[:40]} (known: {', '.join(KEYS)})")
        if key in parsed:
            raise UsageError(f"quota {key} given twice")
        parsed[key] = DEFAULT if value.strip().lower() == DEFAULT else parse_value(key, value)
    if not parsed:
        raise UsageError("nothing to set: give key=value pairs")
    return parsed


def human(key: str, value: int) -> str:
    """A limit or usage as a person reads it: sizes with the largest whole-ish suffix."""
    if key != "drive_bytes":
        return f"{value}{UNITS.get(key, '')}"
    for suffix, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("k", 1 << 10)):
        if value >= scale:
            whole, rest = divmod(value, scale)
            return f"{whole}{suffix}" if not rest else f"{value / scale:.1f}{suffix}"
    return str(value)


def exceeded(quota: Quota, usage: Usage, adding: Usage) -> str | None:
    """The message naming the first limit that usage plus what a command adds would pass, or None.
    Only the keys a command adds to are checked, so a user already over a lowered limit can
    still destroy and stop things."""
    for key in KEYS:
        add = getattr(adding, key)
        limit = getattr(quota, key)
        if add <= 0 or limit is None:
            continue
        total = getattr(usage, key) + add
        if total > limit:
            return f"quota exceeded: {WHAT[key]} {human(key, total)} of {human(key, limit)}"
    return None


def render(quota: Quota, usage: Usage, overridden: Iterable[str]) -> list[str]:
    """`KEY LIMIT USED SOURCE` lines: the limit in plain numbers (or `unlimited`), what the user
    holds now, and whether the limit is the user's own or the configured default."""
    own = set(overridden)
    lines = []
    for key in KEYS:
        limit = getattr(quota, key)
        lines.append(
            f"{key} {UNLIMITED if limit is None else limit} {getattr(usage, key)} {'user' if key in own else 'default'}"
        )
    return lines
