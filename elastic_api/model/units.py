"""Sizes and offsets: bytes with an optional k/M/G/T suffix, powers of 1024."""

from __future__ import annotations

import re

from elastic_api.errors import UsageError

_SUFFIX = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^([0-9]{1,20})([kKmMgGtT]?)$")
# Beyond 2**63 no file, offset or SQLite integer can hold it.
MAX_BYTES = 2**63 - 1


def parse_size(text: str | int, what: str = "size") -> int:
    """`"160G"` → 171798691840; anything else than digits and one suffix is a usage error."""
    if isinstance(text, bool):
        raise UsageError(f"{what} must be a number of bytes, optionally with k, M, G or T")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text.strip())
        if not match:
            raise UsageError(f"{what} must be a number of bytes, optionally with k, M, G or T: {text[:40]!r}")
        value = int(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value < 0 or value > MAX_BYTES:
        raise UsageError(f"{what} out of range")
    return value


def parse_count(text: str | int, what: str, *, minimum: int = 0, maximum: int = MAX_BYTES) -> int:
    """A plain non-negative integer key such as `cpu`, `mem` or a list `limit`."""
    if isinstance(text, bool):
        raise UsageError(f"{what} must be a whole number")
    if isinstance(text, int):
        value = text
    else:
        stripped = text.strip()
        if not stripped.isascii() or not stripped.isdigit() or len(stripped) > 19:
            raise UsageError(f"{what} must be a whole number: {text[:40]!r}")
        value = int(stripped)
    if not minimum <= value <= maximum:
        raise UsageError(f"{what} must be between {minimum} and {maximum}")
    return value
