"""Choosing the host a server starts on: memory room first, then `avoid:*`, then the emptiest."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from elastic_api.errors import FullError


@dataclass(frozen=True)
class HostRoom:
    """How much memory one host can still give to a new guest, in MB."""

    host: str
    room_mb: int


def choose_host(rooms: Sequence[HostRoom], mem_mb: int, avoid: Collection[str] = ()) -> str:
    """The host for a guest of mem_mb: among hosts with room, one not in `avoid` if any has room
    (avoid:* asks for different hardware where possible, as on ElasticHosts: a one-host cloud
    still starts the server), and among those the one with most room, to spread load; ties go to
    the host listed first in the config. FullError when no host has room."""
    fits = [(index, room) for index, room in enumerate(rooms) if room.room_mb >= mem_mb]
    if not fits:
        raise FullError(f"no host has room for a server of {mem_mb} MB")
    preferred = [(index, room) for index, room in fits if room.host not in avoid] or fits
    _, best = max(preferred, key=lambda item: (item[1].room_mb, -item[0]))
    return best.host
