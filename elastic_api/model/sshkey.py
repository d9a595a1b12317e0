"""SSH public keys a user keeps: OpenSSH's one-line format, checked the way sshd reads it."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from elastic_api.errors import Invalid

# The key types OpenSSH accepts in authorized_keys today (ssh-dss is gone since OpenSSH 9.8).
KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# An RSA key of 16384 bits is about 2.8 KB of base64; 8 KiB leaves room for a long comment.
MAX_KEY = 8192
MAX_LABEL = 128
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


@dataclass(frozen=True)
class SshKey:
    id: int
    owner: str
    label: str
    key: str
    created: int  # ns since the epoch


def parse_public_key(text: str) -> str:
    """The key as one normalised line `TYPE BLOB [COMMENT]`; Invalid unless the type is known and
    the blob is base64 that decodes to a key of that very type (its first field names it)."""
    if len(text) > MAX_KEY:
        raise Invalid(f"key longer than {MAX_KEY} characters")
    words = text.strip().split(None, 2)
    if len(words) < 2:
        raise Invalid("key must be an OpenSSH public key: TYPE BASE64 [COMMENT]")
    kind, blob = words[0], words[1]
    if kind not in KEY_TYPES:
        raise Invalid(f"key type {kind[:40]!r} is not one of {', '.join(sorted(KEY_TYPES))}")
    if not _BASE64.match(blob):
        raise Invalid("key's second word is not base64")
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("key's second word is not base64") from None
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != len(kind) or raw[4 : 4 + len(kind)] != kind.encode():
        raise Invalid(f"key's data is not a {kind} key")
    comment = words[2].strip() if len(words) > 2 else ""
    if any(ord(c) < 32 or ord(c) == 127 for c in comment):
        raise Invalid("key's comment must be one line of printable characters")
    return f"{kind} {blob}" + (f" {comment}" if comment else "")


def parse_label(text: str) -> str:
    label = text.strip()
    if not label or len(label) > MAX_LABEL or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in label):
        raise Invalid(f"label must be 1 to {MAX_LABEL} printable characters")
    return label
