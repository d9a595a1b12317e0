"""The wire formats: text properties and JSON objects, parsed into and rendered from plain dicts.

Input of either format becomes `Props`, a dict of key → string (a JSON array of strings becomes
the space-separated string the text format would carry), so validation has one path.
Output is `Info`, a dict of key → str | int | list[str], rendered to either format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from elastic_api.errors import UsageError

Props = dict[str, str]
Value = str | int | list[str]
Info = dict[str, Value]

# Keys are short words joined by colons (`nic:0:model`, `user:owner-ref`); nothing else is a key.
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(?::[A-Za-z0-9_.\-]+)*$")
MAX_KEY = 128


def _check_key(key: str) -> str:
    if len(key) > MAX_KEY or not _KEY.match(key):
        raise UsageError(f"bad key: {key[:MAX_KEY]!r}")
    return key


def unescape(value: str) -> str:
    return value.replace("\\n", "\n")


# Characters never written raw: C0 (LF has the protocol's own `\n`), DEL, C1 and the Unicode line
# and paragraph separators. Input refuses them (model/fields.py); rows stored before that may
# hold them, and a raw CR or NEL would let a value forge a line in another user's answer.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(value: str) -> str:
    r"""A value as one line of text: LF as `\n`, other control characters as `\xNN` or `\uNNNN`."""
    if value.isprintable():
        # Nearly every value: no control character, line or paragraph separator (none of them is
        # printable), so nothing to escape; one C call instead of a regex pass per value.
        return value
    return _UNSAFE.sub(_escaped, value.replace("\r\n", "\n")).replace("\n", "\\n")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("body is not UTF-8 text") from None


def parse_text(body: bytes) -> Props:
    """`key value` lines; blank lines are skipped; a repeated key is an error, never a silent choice."""
    props: Props = {}
    for number, raw in enumerate(_text(body).split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        key, value = [*line.strip().split(None, 1), ""][:2]
        _check_key(key)
        if key in props:
            raise UsageError(f"key {key} given twice (line {number})")
        props[key] = unescape(value.strip())
    return props


def _unicode(key: str, text: str) -> str:
    """JSON can spell a lone UTF-16 surrogate (`"\\ud800"`), which is no character: no UTF-8 text,
    SQLite row or rendered answer can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"key {key[:MAX_KEY]!r} holds a lone UTF-16 surrogate, which is not text") from None
    return text


def _json_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Digits):
        return str(value)
    if isinstance(value, str):
        return _unicode(key, value)
    if isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, str) or isinstance(item, _Digits) or not item or any(c.isspace() for c in item):
                raise UsageError(f"key {key} must be a list of words")
            items.append(_unicode(key, item))
        return " ".join(items)
    raise UsageError(f"key {key} must be a string, a whole number or a list of strings")


class _Digits(str):
    """A JSON whole number, kept as the digits the client sent: converting it to an int would raise
    ValueError past Python's int-string limit (4,300 digits), and every key that takes a number
    parses and bounds the text itself, as it does for the same number sent as a string."""


def parse_json(body: bytes) -> Props:
    try:
        data = json.loads(_text(body), parse_int=_Digits)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise UsageError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise UsageError("JSON body must be one object of keys to values")
    return {_check_key(_unicode("key", str(k))): _json_value(str(k), v) for k, v in data.items()}


def parse_body(body: bytes, content_type: str) -> Props:
    """JSON when labelled so and non-empty; text properties for every other label; empty means no keys."""
    if not body.strip():
        return {}
    if content_type.split(";")[0].strip().lower() == "application/json":
        return parse_json(body)
    return parse_text(body)


def _render_value(value: Value) -> str:
    if isinstance(value, list):
        return " ".join(escape(word) for word in value)
    return escape(str(value))


def render_properties(info: Mapping[str, Value]) -> str:
    lines = []
    for key, value in info.items():
        # Most values are one printable string or a number: written as they are, without a call.
        if (type(value) is str and value.isprintable()) or type(value) is int:
            lines.append(f"{key} {value}\n")
        else:
            lines.append(f"{key} {_render_value(value)}\n")
    return "".join(lines)


def render_list(rows: Iterable[Mapping[str, Value]], columns: Sequence[str]) -> str:
    if len(columns) == 1:  # /drives/list and its kind: one value per line, no inner join
        (column,) = columns
        # A drive or server ID, nearly always: printable text, written as it is without a call.
        return "".join(
            [
                f"{value}\n" if type(value) is str and value.isprintable() else f"{_render_value(value)}\n"
                for value in (row[column] for row in rows)
            ]
        )
    return "".join(" ".join(_render_value(row[c]) for c in columns) + "\n" for row in rows)


def render_properties_list(infos: Iterable[Mapping[str, Value]]) -> str:
    return "\n".join(render_properties(info) for info in infos)


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def render_json(data: object) -> str:
    # json.dumps escapes C0 itself; DEL, C1 and U+2028/9 it would write raw. Outside strings
    # JSON text is ASCII, so each such character sits in a string, where its escape means the same.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def words(value: str) -> list[str]:
    """A multi-valued key's value as its list of words."""
    return value.split()
