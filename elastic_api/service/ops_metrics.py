"""The operators' metrics: what a Prometheus server scrapes from `metrics_listen` (the app's own
health, not a user's servers: those are service/metrics.py). One registry per app, never the
library's global one, so two apps in one process (the tests) keep their counts apart.

Every label has a bounded set of values: a dialect, a route's pattern (never the raw path, which
holds object IDs), a method from a fixed list, a status, a job kind and state, a configured host,
a store call's kind. No user, object ID or client-chosen word becomes a label."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from elastic_api.hypervisor.base import HostStates, Hypervisor
from elastic_api.model.job import DONE, FAILED, UNFINISHED
from elastic_api.service.jobs import JobRunner
from elastic_api.store.base import JobStore, Timed

log = logging.getLogger(__name__)

# Methods counted under their own name; any other (a client may send any token) is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# Request latency buckets (seconds): metadata calls answer in milliseconds, a drive chunk or a
# server start in seconds; past a minute only the count matters.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Store latency buckets: a small read answered on the loop takes microseconds, one on the store's
# thread tens to hundreds of them, a write waits for its group's disk sync (milliseconds).
STORE_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    5.0,
)
# Job run times: an image copy of a small drive takes a second, of a large one many minutes.
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Snapshot:
    """What the gauges show, taken at a scrape's start (the values of an async source cannot be
    read inside the library's synchronous collect())."""

    jobs: dict[tuple[str, str], int] | None = None  # (kind, state) → count; None: the store failed
    hosts: dict[str, bool] = field(default_factory=dict)
    pool: tuple[int, int, int] | None = None  # (size, used, free) bytes; None: statvfs failed


class _Gauges(Collector):
    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        shot = self.snapshot
        if shot.jobs is not None:
            jobs = GaugeMetricFamily(
                "elastic_api_jobs",
                "Unfinished jobs in the store (every node's), by kind and state",
                labels=("kind", "state"),
            )
            for (kind, state), count in sorted(shot.jobs.items()):
                jobs.add_metric((kind, state), count)
            yield jobs
        hosts = GaugeMetricFamily(
            "elastic_api_host_up", "1 while the host's libvirt connection is open, else 0", labels=("host",)
        )
        for host, up in sorted(shot.hosts.items()):
            hosts.add_metric((host,), 1 if up else 0)
        yield hosts
        if shot.pool is not None:
            size, used, free = shot.pool
            yield GaugeMetricFamily(
                "elastic_api_pool_size_bytes", "Size of the filesystem holding the drive pool", value=size
            )
            yield GaugeMetricFamily(
                "elastic_api_pool_used_bytes", "Bytes used on the drive pool's filesystem", value=used
            )
            yield GaugeMetricFamily(
                "elastic_api_pool_free_bytes",
                "Bytes free on the drive pool's filesystem for unprivileged writers",
                value=free,
            )


class OpsMetrics:
    """The registry and its instruments; `observe_request` and the store's timer feed it as the
    app runs, and `scrape()` reads the gauges' sources and renders the text format."""

    def __init__(self, *, store: JobStore, hypervisor: Hypervisor, pool_dir: Path, jobs: JobRunner) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._store, self._hypervisor, self._pool_dir = store, hypervisor, pool_dir
        self._job_kinds = jobs.kinds
        self.requests = Counter(
            "elastic_api_http_requests",
            "HTTP requests answered, by dialect, route pattern, method and status",
            ("dialect", "route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "elastic_api_http_request_duration_seconds",
            "Seconds from a request's headers to the end of its answer, by dialect, route pattern and method",
            ("dialect", "route", "method"),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.store_latency = Histogram(
            "elastic_api_store_duration_seconds",
            "Seconds one call on the metadata store took, waiting for its turn included, by kind (read or write)",
            ("kind",),
            buckets=STORE_BUCKETS,
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "elastic_api_jobs_finished",
            "Jobs this node finished, by kind and outcome (done or failed)",
            ("kind", "state"),
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "elastic_api_job_duration_seconds",
            "Seconds a job this node finished ran, by kind",
            ("kind",),
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        for kind in self._job_kinds:  # at 0 from the start, so a rate() has a first point
            for state in (DONE, FAILED):
                self.jobs_finished.labels(kind, state)
        jobs.on_finish = self.observe_job
        self._snapshot = _Snapshot()
        self.registry.register(_Gauges(self._snapshot))
        if isinstance(store, Timed):
            store.timer = self.observe_store

    def observe_request(self, dialect: str, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(dialect, route, method, str(status)).inc()
        self.latency.labels(dialect, route, method).observe(seconds)

    def observe_job(self, kind: str, state: str, seconds: float) -> None:
        self.jobs_finished.labels(kind, state).inc()
        self.job_duration.labels(kind).observe(seconds)

    def observe_store(self, kind: str, seconds: float) -> None:
        self.store_latency.labels(kind).observe(seconds)

    async def scrape(self) -> bytes:
        """The text exposition, with the gauges read now."""
        shot = self._snapshot
        shot.jobs = await self._jobs()
        shot.hosts = self._hypervisor.hosts_connected() if isinstance(self._hypervisor, HostStates) else {}
        shot.pool = await asyncio.to_thread(self._pool)
        return generate_latest(self.registry)

    async def _jobs(self) -> dict[tuple[str, str], int] | None:
        try:
            jobs = await self._store.unfinished_jobs()
        except Exception:  # a scrape reports what it can; the store's trouble is logged
            log.exception("metrics: could not count the jobs")
            return None
        # Every known kind in every unfinished state, 0 included: a series that vanishes at 0
        # breaks rate() and alerts on absence.
        counts: dict[tuple[str, str], int] = {(kind, state): 0 for kind in self._job_kinds for state in UNFINISHED}
        counts.update(Tally((job.kind, job.status) for job in jobs))
        return counts

    def _pool(self) -> tuple[int, int, int] | None:
        try:
            st = os.statvfs(self._pool_dir)
        except OSError as e:
            log.warning("metrics: cannot measure the pool at %s: %s", self._pool_dir, e.strerror)
            return None
        return st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize
