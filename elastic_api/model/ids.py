"""UUIDs in the canonical lower-case form the protocol names objects by."""

from __future__ import annotations

import re
import uuid

# The all-users UUID: a drive whose `readers` holds it may be read by everyone.
ALL_USERS = "ffffffff-ffff-ffff-ffff-ffffffffffff"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_id() -> str:
    return str(uuid.uuid4())


def parse_id(text: str) -> str | None:
    """The canonical form of a UUID given in any case, or None when it is not one."""
    lowered = text.strip().lower()
    return lowered if _UUID.match(lowered) else None


def is_id(text: str) -> bool:
    return bool(_UUID.match(text))
