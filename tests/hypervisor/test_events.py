"""The bridge that runs libvirt's event loop on asyncio while libvirt calls run in threads."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from elastic_api.config import HostConfig
from elastic_api.errors import FailedError
from elastic_api.hypervisor.libvirt.loop import ThreadSafeLoop
from elastic_api.hypervisor.libvirt import LibvirtHypervisor
from tests.hypervisor.conftest import INSTALLATION, EventLog, server_xml, wait_for


async def test_calls_from_other_threads_run_on_the_loop_in_order() -> None:
    loop = asyncio.get_running_loop()
    bridge = ThreadSafeLoop(loop)
    ran: list[tuple[int, int]] = []
    loop_thread = threading.get_ident()

    def record(n: int) -> None:
        ran.append((n, threading.get_ident()))

    def worker() -> None:
        for n in range(100):
            bridge.call(record, n)

    await asyncio.to_thread(worker)
    bridge.call(record, 100)  # on the loop thread, but queued work goes first
    await wait_for(lambda: len(ran) == 101, what="all calls")
    assert [n for n, _ in ran] == list(range(101))
    assert {thread for _, thread in ran} == {loop_thread}


async def test_direct_calls_on_the_loop_thread() -> None:
    bridge = ThreadSafeLoop(asyncio.get_running_loop())
    ran: list[int] = []
    bridge.call(ran.append, 1)
    assert ran == [1]


async def test_a_task_cancelled_before_it_starts_never_runs() -> None:
    bridge = ThreadSafeLoop(asyncio.get_running_loop())
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")

    def worker() -> None:
        task = bridge.create_task(body())
        task.cancel()

    await asyncio.to_thread(worker)
    started = bridge.create_task(body())
    await wait_for(lambda: ran == ["ran"], what="the second task")
    assert started.cancel()


def test_bind_refuses_a_loop_while_another_runs() -> None:
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        bridge = ThreadSafeLoop(other)

        async def rebind() -> None:
            with pytest.raises(FailedError):
                bridge.bind(asyncio.get_running_loop())

        asyncio.run(rebind())
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()


def test_events_follow_the_hypervisor_from_loop_to_loop() -> None:
    """libvirt takes one event implementation per process; each new loop must still get events."""

    async def one_run() -> list[str]:
        events = EventLog()
        hypervisor = LibvirtHypervisor([HostConfig("test", "test:///default")], installation=INSTALLATION)
        hypervisor.on_event(events)
        await hypervisor.open()
        try:
            server = str(uuid.uuid4())
            await hypervisor.start("test", server_xml(server))
            await hypervisor.stop("test", server)
            await wait_for(lambda: len(events.of(server)) == 2, what="both events")
            return events.of(server)
        finally:
            await hypervisor.close()

    for _ in range(3):
        assert asyncio.run(one_run()) == ["started", "stopped"]
