"""The one rule for the free text every object carries: its name, its tags and the values of the
client's own keys ("user keys"), for drives, servers and resources alike. How a dialect spells
those keys on the wire (ElasticHosts: `user:NAME`) is the dialect's codec's business.

Free text is refused when it holds a control character: C0 (U+0000 to U+001F, tab included),
DEL, C1 (U+0080 to U+009F), and the Unicode line and paragraph separators. Those either end a
line in some reader (CR, NEL, VT, FF, U+2028: `splitlines` breaks on all of them, so a name could
forge a `readers ffff…` line in what another user's client reads), drive a terminal (ESC, BEL),
or truncate a C string (NUL). Tab is refused too: it is whitespace no label needs, and text
input already reads it as a separator. The one exception is LF in a user key's value: the text
format writes it as the two characters `\\n` and reads it back, so it cannot forge a line.

Rows stored before this rule may still hold such characters: they load as they are, and a
dialect's rendering (ElasticHosts: `properties.escape`) never writes one raw.
"""

from __future__ import annotations

import re

from elastic_api.errors import UsageError

# Names are shown in lists and libvirt titles; 256 characters is plenty and keeps rows short.
MAX_NAME = 256
# Tags are short labels; 64 of at most 128 characters keep one object's tags to a few KiB.
MAX_TAG = 128
MAX_TAGS = 64
# User keys' values are free text for the client's own bookkeeping; 4 KiB bounds a row.
MAX_USER_VALUE = 4096

_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REFUSED_IN_USER_VALUES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def free_text(key: str, value: str, limit: int, *, newlines: bool = False) -> str:
    """`value` when it is at most `limit` characters without a control character (LF allowed
    only when `newlines`); otherwise a UsageError naming `key`."""
    if len(value) > limit:
        raise UsageError(f"{key} must be at most {limit} characters")
    if (_REFUSED_IN_USER_VALUES if newlines else _REFUSED).search(value):
        raise UsageError(f"{key} must not contain control characters")
    return value


def parse_name(value: str, *, required: bool = True) -> str:
    """An object's `name`: surrounding spaces dropped; empty only where the object allows it."""
    free_text("name", value, len(value))  # the whole value: strip() would quietly drop FS or NEL
    name = free_text("name", value.strip(), MAX_NAME)
    if required and not name:
        raise UsageError(f"name must be 1 to {MAX_NAME} characters")
    return name


def parse_tags(value: str) -> tuple[str, ...]:
    """`tags`: space-separated words, each given once, in the order given."""
    # The whole value first: splitting on whitespace would quietly eat FS, NEL or U+2028.
    free_text("tags", value, len(value))
    tags = list(dict.fromkeys(value.split()))
    if len(tags) > MAX_TAGS:
        raise UsageError(f"tags holds at most {MAX_TAGS} tags")
    return tuple(free_text("tags", tag, MAX_TAG) for tag in tags)


def parse_user_value(key: str, value: str) -> str:
    """The value of the client's own key `key` ("" removes the key)."""
    return free_text(key, value, MAX_USER_VALUE, newlines=True)
