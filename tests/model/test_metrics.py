"""Rates between a server's consecutive samples: cpu %, KiB/s, and no rate across a restart."""

from __future__ import annotations

import pytest

from elastic_api.model.metrics import MetricPoint, MetricSample, rate, rates

GiB_NS = 1_000_000_000


def sample(
    at: float,
    *,
    run: int = 100,
    cpu_ns: int = 0,
    vcpus: int = 2,
    read: int = 0,
    write: int = 0,
    rx: int = 0,
    tx: int = 0,
) -> MetricSample:
    return MetricSample("s", at, run, cpu_ns, vcpus, read, write, rx, tx)


def test_rates_over_an_interval():
    point = rate(
        sample(1000, cpu_ns=5 * GiB_NS, read=1024, write=0, rx=10, tx=20),
        sample(1010, cpu_ns=15 * GiB_NS, read=1024 + 10 * 4096, write=10 * 1024, rx=10 + 10240, tx=20),
    )
    # 10 s of CPU time over 10 s of 2 vCPUs: half of them busy.
    assert point == MetricPoint(at=1010, cpu_percent=50.0, read_kib_s=4.0, write_kib_s=1.0, rx_kib_s=1.0, tx_kib_s=0.0)


def test_a_guest_over_its_vcpus_is_shown_all_busy():
    point = rate(sample(0, cpu_ns=0, vcpus=1), sample(1, cpu_ns=int(1.05 * GiB_NS), vcpus=1))
    assert point is not None and point.cpu_percent == 100.0


def test_no_vcpus_reported_is_zero_not_a_division_by_zero():
    point = rate(sample(0, vcpus=0), sample(1, cpu_ns=GiB_NS, vcpus=0))
    assert point is not None and point.cpu_percent == 0.0


@pytest.mark.parametrize(
    "later",
    [
        sample(20, cpu_ns=1),  # the guest started again: cpu time restarted at 0
        sample(20, cpu_ns=10 * GiB_NS, read=0),  # a drive's counter went down
        sample(20, cpu_ns=10 * GiB_NS, rx=1),  # a NIC's
        sample(20, cpu_ns=10 * GiB_NS, run=200, read=5000, rx=5000, tx=5000, write=5000),  # another run
        sample(10, cpu_ns=10 * GiB_NS, read=5000, rx=5000, tx=5000, write=5000),  # no time has passed
    ],
)
def test_no_rate_across_a_restart_or_without_time(later):
    earlier = sample(10, cpu_ns=5 * GiB_NS, read=4096, rx=4096, tx=0)
    assert rate(earlier, later) is None


def test_series_skips_the_interval_across_a_restart_and_never_goes_negative():
    samples = [
        sample(0, cpu_ns=0),
        sample(10, cpu_ns=2 * GiB_NS, read=10240),
        sample(20, run=150, cpu_ns=GiB_NS // 10),  # restarted in between: no point at 20
        sample(30, run=150, cpu_ns=GiB_NS // 10 + 4 * GiB_NS, tx=20480),
    ]
    points = rates(list(reversed(samples)))  # order of arrival does not matter
    assert [p.at for p in points] == [10, 30]
    assert [p.cpu_percent for p in points] == [10.0, 20.0]
    assert points[0].read_kib_s == 1.0 and points[1].tx_kib_s == 2.0
    assert all(v >= 0 for p in points for v in (p.cpu_percent, p.read_kib_s, p.write_kib_s, p.rx_kib_s, p.tx_kib_s))


def test_fewer_than_two_samples_have_no_rate():
    assert rates([]) == [] and rates([sample(0)]) == []
