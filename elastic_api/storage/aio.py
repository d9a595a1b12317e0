"""Event-loop helpers for storage: threads that always finish, bounded pipelines, read-ahead."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """asyncio.to_thread, except that a cancelled caller still waits for the thread to finish before
    the cancellation goes on: a thread cannot be interrupted, and it may be using a descriptor or
    buffer that the caller's clean-up is about to close. A write thus lands whole or not at all."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # seen by nobody else: mark it retrieved
        raise


async def pipelined(jobs: AsyncIterator[Coroutine[Any, Any, Any]], depth: int) -> None:
    """Run the jobs with at most `depth` in flight (NBD requests queue well); the first failure
    cancels the rest and is raised."""
    running: set[asyncio.Task[Any]] = set()
    try:
        async for job in jobs:
            running.add(asyncio.ensure_future(job))
            if len(running) >= depth:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
            for task in running:
                if not task.cancelled():
                    task.exception()


async def pieces(
    offset: int, end: int, chunk: int, read: Callable[[int, int], Coroutine[Any, Any, bytes]], ahead: int = 2
) -> AsyncGenerator[bytes, None]:
    """The bytes [offset, end) in `chunk`-sized reads, `ahead` of them in flight, so the next one
    is read while the caller sends the last. Unfinished reads are awaited before this returns: a
    read may be using a descriptor the caller closes next."""
    tasks: list[asyncio.Task[bytes]] = []
    try:
        pos = offset
        while pos < end or tasks:
            while pos < end and len(tasks) < ahead:
                n = min(chunk, end - pos)
                tasks.append(asyncio.ensure_future(read(pos, n)))
                pos += n
            data = await tasks[0]
            tasks.pop(0)
            yield data
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled():
                    task.exception()


@dataclass
class _Failed:
    error: BaseException


async def read_ahead(source: AsyncIterator[T], depth: int) -> AsyncGenerator[T, None]:
    """Iterate `source` in a task of its own, up to `depth` items ahead of the consumer, so that
    reading the source and writing the target overlap instead of taking turns."""
    queue: asyncio.Queue[tuple[T] | _Failed | None] = asyncio.Queue(depth)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put((item,))
            await queue.put(None)
        except Exception as e:
            await queue.put(_Failed(e))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    producer = asyncio.ensure_future(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item[0]
    finally:
        producer.cancel()
        await asyncio.wait([producer])
