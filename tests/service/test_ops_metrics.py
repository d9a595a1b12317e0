"""OpsMetrics without the program: a registry per instance, gauges read at scrape time, and a
scrape that reports what it can when a source fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from elastic_api.hypervisor.base import Hypervisor
from elastic_api.model.job import IMAGE, RUNNING, ImageParams, Job
from elastic_api.service.jobs import JobRunner
from elastic_api.service.ops_metrics import OpsMetrics
from elastic_api.store.base import JobStore


class FakeStore:
    def __init__(self, jobs: list[Job] | None) -> None:
        self.jobs = jobs
        self.timer: Any = None

    async def unfinished_jobs(self) -> list[Job]:
        if self.jobs is None:
            raise OSError("the store is away")
        return self.jobs


class FakeHypervisor:
    def hosts_connected(self) -> dict[str, bool]:
        return {"a": True, "b": False}


def metrics(store: FakeStore, pool: Path) -> OpsMetrics:
    jobs = JobRunner(cast(JobStore, store), "node", lease_seconds=60, heartbeat_seconds=12, progress_seconds=1)

    async def handler(job: Job, progress: Any) -> None:
        pass

    jobs.register(IMAGE, handler, concurrency=1, idempotent=True)
    return OpsMetrics(
        store=cast(JobStore, store), hypervisor=cast(Hypervisor, FakeHypervisor()), pool_dir=pool, jobs=jobs
    )


async def samples(ops: OpsMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await ops.scrape()).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_each_instance_counts_alone_and_gauges_are_read_at_scrape(tmp_path: Path) -> None:
    job = Job(1, IMAGE, "owner", "drive", ImageParams("source", ""), status=RUNNING)
    store = FakeStore([job])
    one, two = metrics(store, tmp_path), metrics(FakeStore([]), tmp_path)
    assert store.timer == one.observe_store  # the store reports its calls' times to its app's metrics
    one.observe_request("elastichosts", "/drives/{drive}/info", "GET", 200, 0.01)
    one.observe_request("elastichosts", "/drives/{drive}/info", "BREW", 405, 0.01)
    first, second = await samples(one), await samples(two)
    key = (("dialect", "elastichosts"), ("method", "GET"), ("route", "/drives/{drive}/info"), ("status", "200"))
    assert first[("elastic_api_http_requests_total", key)] == 1
    assert ("elastic_api_http_requests_total", key) not in second
    assert first[("elastic_api_http_requests_total", (*key[:1], ("method", "other"), key[2], ("status", "405")))] == 1
    assert first[("elastic_api_jobs", (("kind", "image"), ("state", "running")))] == 1
    assert first[("elastic_api_jobs", (("kind", "image"), ("state", "queued")))] == 0
    assert second[("elastic_api_jobs", (("kind", "image"), ("state", "running")))] == 0
    assert first[("elastic_api_host_up", (("host", "a"),))] == 1
    assert first[("elastic_api_host_up", (("host", "b"),))] == 0
    assert first[("elastic_api_pool_free_bytes", ())] > 0

    store.jobs = []  # read again at the next scrape
    assert (await samples(one))[("elastic_api_jobs", (("kind", "image"), ("state", "running")))] == 0


async def test_a_scrape_reports_what_it_can_when_a_source_fails(tmp_path: Path) -> None:
    ops = metrics(FakeStore(None), tmp_path / "no-such-pool")
    got = await samples(ops)
    names = {name for name, _ in got}
    assert "elastic_api_jobs" not in names and "elastic_api_pool_free_bytes" not in names
    assert got[("elastic_api_host_up", (("host", "a"),))] == 1
