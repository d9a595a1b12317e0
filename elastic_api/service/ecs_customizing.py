"""Watching a started ECS guest's serial log for the customization markers (model/serial_markers.py):
`Customizing` from BEGIN, `Booted` from END (whatever its rc), or `Booted` with a note once
`ecs_customize_timeout_seconds` pass without END. The log's new bytes are read in a thread, every
`ecs_poll_seconds`: never on the loop, never more than MAX_READ bytes at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from elastic_api.model.serial_markers import Scan, feed

# Bytes read from the log per look: a chatty guest is caught up with over several looks.
MAX_READ = 1 << 20


@dataclass(frozen=True)
class Outcome:
    rc: int | None  # the script's exit code; None when END never came
    note: str  # "" when the script succeeded: what the action or log should say otherwise


def _read(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(MAX_READ)
    except FileNotFoundError:
        return b""


def note_of(rc: int | None, timeout: float) -> str:
    """What a create says about a customization that did not succeed (never the password)."""
    if rc is None:
        return f"customization script did not report its end within {timeout:.0f} s"
    return "" if rc == 0 else f"customization script failed with exit code {rc}"


async def watch(
    path: Path,
    instance_ids: frozenset[str],
    *,
    poll: float,
    give_up_after: float,
    on_begin: Callable[[], Awaitable[None]],
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Wait for the END marker of one of `instance_ids` in the serial log at `path`, calling
    `on_begin` once when BEGIN (or END at once) is first seen."""
    scan, offset, told = Scan(), 0, False
    deadline = clock() + give_up_after
    while True:
        data = await asyncio.to_thread(_read, path, offset)
        offset += len(data)
        scan = feed(scan, data, instance_ids)
        if scan.markers.begun and not told:
            told = True
            await on_begin()
        if scan.markers.ended:
            return Outcome(scan.markers.rc, note_of(scan.markers.rc, give_up_after))
        if len(data) == MAX_READ:
            continue  # more is waiting
        if clock() >= deadline:
            return Outcome(None, note_of(None, give_up_after))
        await asyncio.sleep(poll)
