"""Metrics: a sampler per host reads every running server's counters each `metrics_interval`,
the store keeps them for `metrics_retention`, and a server's series is the rates between its
consecutive samples (model.metrics.rates)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from elastic_api.errors import FailedError, MissingError
from elastic_api.hypervisor import DomainSample, Hypervisor
from elastic_api.model.metrics import MetricPoint, MetricSample, rates
from elastic_api.model.ids import parse_id
from elastic_api.store import MetricsStore, ServerStore

log = logging.getLogger(__name__)

# Seconds at least between two log lines about one host's sampler failing: a host that stays out
# of reach would otherwise log every interval; its recovery is logged once.
FAILURE_LOG_SECONDS = 3600.0


class SampleStore(MetricsStore, ServerStore, Protocol):
    """What metrics need of the store: the samples, and which servers are active where."""


def stored(sample: DomainSample, run: int) -> MetricSample:
    """What the store keeps of a sample: drives and NICs summed, tagged with the server's run."""
    return MetricSample(
        server=sample.server,
        at=sample.at,
        run=run,
        cpu_ns=sample.cpu_ns,
        vcpus=sample.vcpus,
        read_bytes=sum(d.read_bytes for d in sample.drives.values()),
        write_bytes=sum(d.write_bytes for d in sample.drives.values()),
        rx_bytes=sample.rx_bytes,
        tx_bytes=sample.tx_bytes,
    )


class MetricsService:
    """Samples run in tasks of their own, one per host, so a slow or unreachable host delays
    nobody else; libvirt's calls run in worker threads (Hypervisor.samples), never on the loop.
    A failing round is logged (at most every FAILURE_LOG_SECONDS per host) and the next round
    tries again: sampling never stops the API or another host's sampler."""

    def __init__(
        self,
        store: SampleStore,
        hypervisor: Hypervisor,
        *,
        interval: float,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hypervisor = hypervisor
        self.interval = interval
        self.retention = retention
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        # Per host (and "prune"): when its failure was last logged; absent while it works.
        self._failing: dict[str, float] = {}

    async def start(self) -> None:
        if self._tasks:
            return
        for host in self.hypervisor.host_names:
            self._tasks.append(
                asyncio.create_task(self._every_interval(host, self.sample_host), name=f"metrics-{host}")
            )
        self._tasks.append(
            asyncio.create_task(self._every_interval("prune", lambda _: self.prune()), name="metrics-prune")
        )

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _every_interval(self, what: str, round_: Callable[[str], Awaitable[int]]) -> None:
        # The first round comes an interval after start: start-up (reconciling, sweeping) is busy
        # enough, and a sample then would only be one more point of the same run.
        while True:
            await asyncio.sleep(self.interval)
            try:
                await round_(what)
            except Exception as e:  # one bad round must not end the sampler
                self._failed(what, e)
            else:
                if self._failing.pop(what, None) is not None:
                    log.info("metrics: %s works again", what)

    def _failed(self, what: str, error: Exception) -> None:
        now = time.monotonic()
        last = self._failing.get(what)
        if last is not None and now - last < FAILURE_LOG_SECONDS:
            return
        self._failing[what] = now
        if isinstance(error, FailedError):
            log.warning("metrics: %s failed (logged again in an hour if it goes on): %s", what, error)
        else:
            log.error("metrics: %s failed (logged again in an hour if it goes on)", what, exc_info=error)

    async def sample_host(self, host: str) -> int:
        """One round on one host: the counters of the servers the store has active there, kept;
        how many were kept. A server the store does not have active on the host is not ours to
        sample (another installation's, or one whose start or stop is under way)."""
        runs = {
            record.server: record.started or 0 for record in await self.store.active_servers() if record.host == host
        }
        if not runs:
            return 0
        samples = await self.hypervisor.samples(host, runs)
        return await self.store.add_samples(
            [stored(sample, runs[sample.server]) for sample in samples if sample.server in runs]
        )

    async def prune(self) -> int:
        """Drop the samples older than the retention; how many went."""
        return await self.store.prune_samples(self._clock() - self.retention)

    async def series(self, user: str, server_id: str) -> list[MetricPoint]:
        """The user's server's rates over the retention, oldest first: empty until it has run
        for two intervals. MissingError when it is missing or another user's."""
        server = parse_id(server_id)
        if server is None or await self.store.get_server(user, server) is None:
            raise MissingError(f"no such server: {server_id[:40]}")
        return rates(await self.store.server_samples(user, server, self._clock() - self.retention))
