"""A server's sampled counters and the rates between them: pure, in no dialect's words."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

KiB = 1024
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class MetricSample:
    """A server's cumulative counters at one moment, as stored: drives and NICs summed."""

    server: str
    # Epoch seconds, UTC, when the counters were read.
    at: float
    # The start time of the server's run the counters belong to (they restart at 0 with each
    # run): two samples of different runs have no rate between them.
    run: int
    cpu_ns: int
    vcpus: int
    read_bytes: int
    write_bytes: int
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class MetricPoint:
    """The rates over the interval that ends at `at` (epoch seconds, UTC)."""

    at: float
    # Share of the server's vCPUs kept busy, 0 to 100.
    cpu_percent: float
    # KiB/s read from and written to its drives, received and transmitted on its NICs.
    read_kib_s: float
    write_kib_s: float
    rx_kib_s: float
    tx_kib_s: float


def rate(earlier: MetricSample, later: MetricSample) -> MetricPoint | None:
    """The rates between two samples of one server, or None when there is no honest one: the
    samples are of different runs, out of order, or a counter went down (the guest started
    again between them: the counters restarted at 0, and a difference would be negative)."""
    elapsed = later.at - earlier.at
    if later.run != earlier.run or elapsed <= 0:
        return None
    deltas = (
        later.cpu_ns - earlier.cpu_ns,
        later.read_bytes - earlier.read_bytes,
        later.write_bytes - earlier.write_bytes,
        later.rx_bytes - earlier.rx_bytes,
        later.tx_bytes - earlier.tx_bytes,
    )
    if any(delta < 0 for delta in deltas):
        return None
    cpu_ns, read, write, rx, tx = deltas
    # cpu.time counts QEMU's own threads too and the read times jitter, so a guest spinning every
    # vCPU can come out a little over 100%: it is shown as 100, all of its vCPUs busy.
    cpu = min(100.0, 100.0 * cpu_ns / (elapsed * NS_PER_S * later.vcpus)) if later.vcpus > 0 else 0.0
    return MetricPoint(
        at=later.at,
        cpu_percent=cpu,
        read_kib_s=read / KiB / elapsed,
        write_kib_s=write / KiB / elapsed,
        rx_kib_s=rx / KiB / elapsed,
        tx_kib_s=tx / KiB / elapsed,
    )


def rates(samples: Sequence[MetricSample]) -> list[MetricPoint]:
    """One point per pair of consecutive samples (ordered by time) that has an honest rate;
    an interval across a restart of the guest is skipped."""
    ordered = sorted(samples, key=lambda sample: sample.at)
    points = (rate(earlier, later) for earlier, later in itertools.pairwise(ordered))
    return [point for point in points if point is not None]
