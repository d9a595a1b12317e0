"""Libvirt's event loop on asyncio (libvirtaio), safe for libvirt calls made from worker threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import libvirt
import libvirtaio

from elastic_api.errors import FailedError


class _LoopTask:
    """What libvirtaio keeps of a timer task: cancel() may come from any thread."""

    def __init__(self, loop: ThreadSafeLoop) -> None:
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def start(self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        if self._cancelled or loop.is_closed():
            coro.close()
        else:
            self._task = loop.create_task(coro)

    def cancel(self) -> bool:
        self._loop.call(self._cancel)
        return True

    def _cancel(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()


class ThreadSafeLoop:
    """Stands in for the asyncio loop inside libvirtaio's event implementation.

    libvirt calls its event implementation from whichever thread calls into libvirt, and our
    libvirt calls run in worker threads (asyncio.to_thread) so they never block the loop; but
    libvirtaio drives the loop directly (add_reader, create_task), which only the loop's own
    thread may do. Calls from other threads are queued onto the loop in order; calls on the loop
    thread run at once unless queued ones are still pending, so the order libvirt asked for holds.

    libvirt takes one event implementation per process, so this object outlives any one loop:
    bind() moves it (and libvirt's registered handles and timers) to a new loop once the old one
    has stopped, which is what test suites with a loop per test need.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lock = threading.Lock()
        self._loop = loop
        self._thread = threading.get_ident()
        self._queued = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._loop.is_closed():
                # The loop is gone (between two tests' loops): bind() re-arms on the next one
                # whatever libvirt still has registered; a task's coroutine will never run.
                for arg in args:
                    if asyncio.iscoroutine(arg):
                        arg.close()
                return
            if self._queued == 0 and threading.get_ident() == self._thread:
                queued = False
            else:
                queued = True
                self._queued += 1
                self._loop.call_soon_threadsafe(self._run_queued, fn, args)
        if not queued:
            fn(*args)

    def _run_queued(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._lock:
            self._queued -= 1
        fn(*args)

    # The loop methods libvirtaio uses.
    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        self.call(self._loop.add_reader, fd, callback, *args)

    def remove_reader(self, fd: int) -> bool:
        self.call(self._loop.remove_reader, fd)
        return True

    def add_writer(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        self.call(self._loop.add_writer, fd, callback, *args)

    def remove_writer(self, fd: int) -> bool:
        self.call(self._loop.remove_writer, fd)
        return True

    def create_task(self, coro: Coroutine[Any, Any, Any], **_: Any) -> _LoopTask:
        task = _LoopTask(self)
        self.call(task.start, coro, self._loop)
        return task

    def bind(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Move to `loop` (the running one); False when already there."""
        if loop is self._loop:
            return False
        if self._loop.is_running():
            raise FailedError("libvirt events are already bound to another running event loop")
        with self._lock:
            self._loop = loop
            self._thread = threading.get_ident()
            # Work queued on the dead loop never ran; the re-arming in _rebind redoes what matters.
            self._queued = 0
        return True


def _rebind(impl: libvirtaio.virEventAsyncIOImpl) -> None:
    """Re-arm libvirt's live handles and timers on the implementation's (new) loop. This reaches
    into libvirtaio's bookkeeping, which has no public way to change loops."""
    # Free callbacks queued on the dead loop never ran: only live handles and timers are pending.
    impl._pending = len(impl.callbacks)
    impl._finished = None
    for descriptor in list(impl.descriptors.values()):
        try:
            descriptor.update()
        except (OSError, KeyError, ValueError):
            # A handle of a connection closed while the old loop was ending: its fd is gone (or
            # not pollable). libvirt's own remove-handle call clears it when it comes.
            continue
    for callback in list(impl.callbacks.values()):
        if isinstance(callback, libvirtaio.TimeoutCallback) and callback._task is not None:
            callback._task = None
            callback.update(timeout=callback.timeout)


def _ignore_error(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default; ours become FailedError and log lines."""


def ensure_event_loop() -> libvirtaio.virEventAsyncIOImpl:
    """Make libvirt dispatch its events (domain lifecycle, connection keepalives) on the running
    asyncio loop, registering libvirtaio on first use and moving it onto this loop afterwards.

    The registration is process-wide by libvirt's design: libvirtaio keeps it (getCurrentImpl),
    so no state of ours lives outside the objects that use it.
    """
    loop = asyncio.get_running_loop()
    libvirt.registerErrorHandler(_ignore_error, None)
    impl = libvirtaio.getCurrentImpl()
    if impl is None:
        return libvirtaio.virEventRegisterAsyncIOImpl(loop=ThreadSafeLoop(loop))
    bridge = impl.loop
    if isinstance(bridge, ThreadSafeLoop):
        if bridge.bind(loop):
            _rebind(impl)
        return impl
    if bridge is not loop:
        raise FailedError("libvirt events were registered on another event loop by other code")
    return impl


async def drain(impl: libvirtaio.virEventAsyncIOImpl, seconds: float) -> None:
    """Give libvirt's free callbacks for closed handles and timers (it runs them through the loop)
    the chance to run before the loop may end. Unlike libvirtaio's drain() this does not wait
    for handles other connections still use."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    # libvirtaio signals only "no handles at all", so poll its count of unfreed ones.
    while impl._pending > len(impl.callbacks) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
