"""No ElasticHosts wire key below api/: model, service, store, storage and hypervisor speak typed
values, and only api/elastichosts knows how a field is spelled on the wire."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "elastic_api"
NEUTRAL = ("model", "service", "store", "storage", "hypervisor")

# ElasticHosts keys that no neutral module may spell in a string literal (error messages and
# f-strings included): a word of a literal equal to one, ending in `:` and one (`f"{dev}:read:bytes"`),
# or, for the prefixes ending in ":", starting with one and going on. Extend the list as each object's codec
# lands.
FORBIDDEN = (
    # drives
    "claim:type",
    "encryption:cipher",
    "read:bytes",
    "read:requests",
    "write:bytes",
    "write:requests",
    "imaging:error",
    # servers
    "ide:",
    "scsi:",
    "block:",
    "nic:",
    "vnc:password",
    "vnc:tls",
    "vnc:port",
    "vnc:ip",
    "avoid:drives",
    "avoid:servers",
    "smp:cores",
    "smp:sockets",
    "rx:packets",
    "tx:packets",
    "dhcp:ip",
    # every object's own keys
    "user:",
)

# Modules still holding wire words, path → why. The dict may only shrink: a module that gains a
# wire word fails, and one that loses its last must leave the dict.
ALLOWED: dict[str, str] = {
    "store/legacy_server_rows.py": "the frozen reader of the server rows written before typed rows (ElasticHosts "
    "props), for the migration that converts them; never changes",
}


def literals(path: Path) -> set[str]:
    """Every string literal in the module, docstrings included; an f-string with `{}` for each
    of its replacement fields."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.add("".join(str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values))
    return found


def _spells(token: str, word: str) -> bool:
    if word.endswith(":"):  # a key needs a name after its prefix: "no such user: x" names none
        return token.startswith(word) and len(token) > len(word)
    return token == word or token.endswith(":" + word)


def wire_words(text: str) -> list[str]:
    return [word for word in FORBIDDEN if any(_spells(token, word) for token in text.split())]


def offenders() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for layer in NEUTRAL:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            words = sorted({w for text in literals(path) for w in wire_words(text)})
            if words:
                found[str(path.relative_to(PACKAGE))] = words
    return found


def test_no_wire_words_below_api():
    unexpected = {path: words for path, words in offenders().items() if path not in ALLOWED}
    assert not unexpected, f"ElasticHosts wire keys below api/ (move them to a codec): {unexpected}"


def test_allowlist_only_shrinks():
    stale = sorted(set(ALLOWED) - set(offenders()))
    assert not stale, f"no wire words left in these, take them off ALLOWED: {stale}"


def test_the_check_sees_wire_words():
    assert wire_words("claim:type") == ["claim:type"] and wire_words("user:ref") == ["user:"]
    assert wire_words("claim:type must be one of") == ["claim:type"]
    assert wire_words("{}:read:bytes") == ["read:bytes"] and wire_words("user:{}") == ["user:"]
    assert wire_words("user") == [] and wire_words("claim") == [] and wire_words("a `user:NAME` key") == []
    assert wire_words("no such user: x") == [] and wire_words("read:bytesx") == [] and wire_words("x-read:bytes") == []
