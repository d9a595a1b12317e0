"""Groups: a user's named sets of servers (Seeweb's groups, Huawei's sub-projects)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Names come from a global counter: `eg` and six digits, the first being eg100001.
FIRST_NUMBER = 100000
_NAME = re.compile(r"^eg([0-9]{6,9})$")


@dataclass(frozen=True)
class Group:
    id: int  # global, never reused
    owner: str
    notes: str
    enabled: bool
    password_hash: bytes  # never shown to anyone
    created: int  # ns since the epoch

    @property
    def name(self) -> str:
        return group_name(self.id)


def group_name(id_: int) -> str:
    return f"eg{FIRST_NUMBER + id_:06d}"


def group_id(name: str) -> int | None:
    """The id a group name stands for, or None when it is not one."""
    match = _NAME.match(name)
    if match is None or int(match.group(1)) <= FIRST_NUMBER:
        return None
    return int(match.group(1)) - FIRST_NUMBER
