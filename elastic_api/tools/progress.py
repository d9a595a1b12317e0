"""A progress bar with bytes, throughput and ETA, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

# Throughput over the last few seconds: recent enough to follow a changing link, long enough not to flicker.
RATE_WINDOW = 5.0
# Redraw at most this often: a terminal cannot show more, and each redraw costs a write.
REDRAW_EVERY = 0.1
# Redraw at least this often, so a stalled transfer shows its throughput falling.
TICK_EVERY = 0.5
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: float) -> str:
    for unit in UNITS:
        if abs(count) < 1024 or unit == UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_time(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Bytes done of a total; `note` prints a message line without tearing the bar."""

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.done, self.label = total, done, label
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque([(clock(), done)])
        self.drawn_at = 0.0
        self.shown = False

    def reset(self, total: int, done: int = 0) -> None:
        """Start over once the total is known (a download learns it from the drive's info)."""
        self.total, self.done = total, done
        self.samples = deque([(self.clock(), done)])

    def advance(self, count: int) -> None:
        self.done += count
        self.draw()

    def rate(self) -> float:
        """Bytes per second over the last RATE_WINDOW seconds."""
        now = self.clock()
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[1][0] > RATE_WINDOW:
            self.samples.popleft()
        then, before = self.samples[0]
        return (self.done - before) / (now - then) if now > then else 0.0

    def line(self, width: int) -> str:
        rate = self.rate()
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        left = self.total - self.done
        eta = human_time(left / rate) if rate > 0 and left > 0 else "--:--" if left > 0 else "0:00"
        tail = (
            f" {fraction * 100:3.0f}% {human_bytes(self.done)}/{human_bytes(self.total)}"
            f" {human_bytes(rate)}/s ETA {eta}"
        )
        head = f"{self.label} " if self.label else ""
        room = width - len(head) - len(tail) - 3
        if room < 10:
            return (head + tail.strip())[: max(0, width - 1)]
        filled = int(room * fraction)
        return f"{head}[{'=' * filled}{' ' * (room - filled)}]{tail}"

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self.drawn_at < REDRAW_EVERY:
            return
        self.drawn_at = now
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + self.line(width).ljust(width - 1)[: width - 1])
        self.stream.flush()
        self.shown = True

    def note(self, message: str) -> None:
        """A message on a line of its own; on a terminal the bar is redrawn below it."""
        shown = self.enabled and self.shown
        if shown:
            width = shutil.get_terminal_size((80, 24)).columns
            self.stream.write("\r" + " " * (width - 1) + "\r")
        self.stream.write(message + "\n")
        self.stream.flush()
        if shown:
            self.draw(force=True)

    def close(self) -> None:
        if self.enabled and self.shown:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False

    async def tick(self) -> None:
        """Redraw now and then until cancelled."""
        while True:
            await asyncio.sleep(TICK_EVERY)
            self.draw(force=True)
