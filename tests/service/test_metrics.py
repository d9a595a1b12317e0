"""The metrics service over a real store and a fake hypervisor: what a round keeps, the series,
pruning, and a failing host that is logged now and then and stops nobody."""

from __future__ import annotations

from typing import cast

import asyncio
import logging
import time

import pytest

from elastic_api.errors import FailedError, MissingError
from elastic_api.hypervisor.base import DomainSample, DriveBytes, Hypervisor
from elastic_api.model.device import Device
from elastic_api.model.ids import new_id
from elastic_api.service.metrics import MetricsService
from elastic_api.store.sqlite import SqliteStore
from tests.contract.conftest import server_record, users

NS = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeHypervisor:
    """Each server's counters grow by one second of CPU and 1 KiB per drive and NIC per sample."""

    host_names = ("a", "b")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failing: set[str] = set()
        self.rounds = {"a": 0, "b": 0}
        self.asked: dict[str, set[str]] = {}

    async def samples(self, host: str, servers):
        self.rounds[host] += 1
        self.asked[host] = set(servers)
        if host in self.failing:
            raise FailedError(f"could not read the servers' statistics: host {host} is unreachable")
        n = self.rounds[host]
        drives = {Device("ide", 0, 0): DriveBytes(n * 1024, 0), Device("ide", 0, 1): DriveBytes(n * 1024, 0)}
        found = [DomainSample(s, self.clock(), n * NS, 1, drives, n * 1024, 0) for s in servers]
        # A domain nobody asked for is never kept, even if a hypervisor answered it.
        return [*found, DomainSample(new_id(), self.clock(), 1, 1, {}, 0, 0)]


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(tmp_path / "db" / "elastic.db")
    await store.open()
    yield store
    await store.close()


async def server_on(store, owner: str, host: str | None, started: int = 500) -> str:
    record = server_record(owner)
    await store.insert_server(record)
    if host is not None:
        await store.activate_server(owner, record.server, host, started, [])
    return record.server


async def test_rounds_keep_the_servers_active_on_the_host_and_the_series_is_their_rates(store):
    clock = Clock()
    hypervisor = FakeHypervisor(clock)
    metrics = MetricsService(store, cast(Hypervisor, hypervisor), interval=10, retention=100, clock=clock)
    alice, bob = await users(store)
    on_a, on_b = await server_on(store, alice, "a"), await server_on(store, alice, "b")
    stopped, theirs = await server_on(store, alice, None), await server_on(store, bob, "a")
    for _ in range(3):
        assert await metrics.sample_host("a") == 2
        clock.now += 10
    assert hypervisor.asked["a"] == {on_a, theirs}  # only what the store has active there
    points = await metrics.series(alice, on_a.upper())  # an ID in any case
    assert [p.at for p in points] == [1010, 1020]
    assert all(
        p.cpu_percent == 10.0 and p.read_kib_s == 0.2 and p.rx_kib_s == 0.1 and p.write_kib_s == 0 for p in points
    )
    assert await metrics.series(alice, on_b) == []  # host b never sampled
    assert await metrics.series(alice, stopped) == []
    for missing in (theirs, new_id(), "not-an-id"):
        with pytest.raises(MissingError):
            await metrics.series(alice, missing)
    assert len(await metrics.series(bob, theirs)) == 2


async def test_a_restart_between_samples_is_no_rate(store):
    clock = Clock()
    hypervisor = FakeHypervisor(clock)
    metrics = MetricsService(store, cast(Hypervisor, hypervisor), interval=10, retention=1000, clock=clock)
    (alice,) = await users(store, 1)
    server = await server_on(store, alice, "a", started=500)
    for _ in range(2):
        await metrics.sample_host("a")
        clock.now += 10
    await store.deactivate_server(alice, server)
    await store.activate_server(alice, server, "a", 1015, [])
    hypervisor.rounds["a"] = 0  # the new run's counters start again
    for _ in range(2):
        await metrics.sample_host("a")
        clock.now += 10
    assert [p.at for p in await metrics.series(alice, server)] == [1010, 1030]


async def test_pruning_keeps_the_retention(store):
    clock = Clock()
    metrics = MetricsService(store, cast(Hypervisor, FakeHypervisor(clock)), interval=10, retention=35, clock=clock)
    (alice,) = await users(store, 1)
    server = await server_on(store, alice, "a")
    for _ in range(5):  # at 1000, 1010, ... 1040
        await metrics.sample_host("a")
        clock.now += 10
    assert await metrics.prune() == 2  # now 1050: 1000 and 1010 are over 35 s old
    assert [s.at for s in await store.server_samples(alice, server, 0)] == [1020, 1030, 1040]
    assert [p.at for p in await metrics.series(alice, server)] == [1030, 1040]


async def test_a_failing_host_is_logged_once_and_stops_nobody(store, caplog):
    hypervisor = FakeHypervisor(Clock())
    hypervisor.clock = time.time  # type: ignore[assignment]
    metrics = MetricsService(store, cast(Hypervisor, hypervisor), interval=0.01, retention=3600)
    (alice,) = await users(store, 1)
    server = await server_on(store, alice, "b")
    await server_on(store, alice, "a")
    hypervisor.failing.add("a")
    caplog.set_level(logging.INFO, logger="elastic_api.service.metrics")
    await metrics.start()
    try:
        deadline = time.monotonic() + 30
        while hypervisor.rounds["a"] < 5 or len(await metrics.series(alice, server)) < 3:
            assert time.monotonic() < deadline, "the samplers stopped"
            await asyncio.sleep(0.01)
        failures = [r for r in caplog.records if "host a is unreachable" in r.getMessage()]
        assert len(failures) == 1 and failures[0].levelno == logging.WARNING
        hypervisor.failing.clear()
        rounds = hypervisor.rounds["a"]
        while hypervisor.rounds["a"] < rounds + 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert any("metrics: a works again" in r.getMessage() for r in caplog.records)
    finally:
        await metrics.close()
    every = dict(hypervisor.rounds)
    await asyncio.sleep(0.05)
    assert hypervisor.rounds == every  # closed: no sampler left running
