"""sendfile from worker threads: a download's bytes move on every core, not the event loop's.

asyncio's loop.sendfile runs each os.sendfile call on the event loop, a socket buffer's worth at a
time, between every other request's work: measured, 4 MiB reads reached 0.44-0.46 of a bare
threaded sendfile server. Here the kernel copy runs in a thread (os.sendfile drops the GIL), on
a duplicate of the connection's descriptor, waiting for room with poll, after the transport has
nothing buffered; the answer's head, held back by aiohttp, goes out with the first bytes.

Threads are a bounded pool of their own (`sendfile_threads`): a client that stops reading holds
one until `sendfile_stall` seconds pass without progress, and when all are busy a download falls
back to the loop's sendfile, so a few stalled clients can never starve the other thread users.
The pool is a queue and a few threads rather than a ThreadPoolExecutor: its futures, chained to
asyncio's, cost a busy download loop a tenth of its time; a job here is one object and one
call_soon_threadsafe back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import socket
import threading
from collections.abc import Callable

# Milliseconds between looks at whether the send was given up (the transport closed, the
# handler cancelled) while the client's socket has no room.
POLL_MS = 200


class ThreadedSendfile:
    def __init__(self, threads: int, stall_seconds: float) -> None:
        self._size = max(1, threads)
        self._free = self._size
        self._stall = stall_seconds
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []  # started at the first send

    def try_take(self) -> bool:
        """A free sender thread, taken (give it back with give_back), or False."""
        if self._free <= 0:
            return False
        self._free -= 1
        return True

    def give_back(self) -> None:
        self._free += 1

    async def send(
        self,
        sock_fd: int,
        file: Callable[[], int],
        offset: int,
        length: int,
        closing: Callable[[], bool],
        head: bytes = b"",
    ) -> int:
        """Send `head` (an answer's head not yet sent), then [offset, offset+length) of the file
        `file()` opens as a descriptor (in the thread, closed there) to the socket; the file's
        bytes sent. Call it with a slot taken (so a thread is free for it at once). On
        cancellation the thread is told to stop, and waited for."""
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        fd = os.dup(sock_fd)  # ours alone: the transport closing its descriptor cannot reuse it under us
        # The thread closes fd when it ends: a system call the loop no longer makes.
        job = _Job(loop, fd, file, offset, length, closing, self._stall, head)
        self._jobs.put(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.stop = True
            if not job.ended:
                job.future = loop.create_future()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job.future  # a second cancel leaves the thread to finish alone
            raise

    def _start(self) -> None:
        for i in range(self._size):
            thread = threading.Thread(target=self._work, name=f"sendfile_{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()

    def close(self) -> None:
        """The threads end once their sends do (each is bounded by the stall limit)."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []


class _Job:
    """One send: made on the loop, run on a sender thread, its outcome handed back to the loop."""

    __slots__ = (
        "closing",
        "ended",
        "future",
        "head",
        "length",
        "loop",
        "offset",
        "opener",
        "sock",
        "stall",
        "stop",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: int,
        opener: Callable[[], int],
        offset: int,
        length: int,
        closing: Callable[[], bool],
        stall: float,
        head: bytes,
    ) -> None:
        self.loop = loop
        self.future: asyncio.Future[int] = loop.create_future()
        self.ended = False  # set on the loop, when the thread's outcome arrived there
        self.stop = False  # the loop's word to the thread to give up: a plain attribute
        self.sock, self.opener, self.offset, self.length = sock, opener, offset, length
        self.closing, self.stall, self.head = closing, stall, head

    def run(self) -> None:
        """On a sender thread: send, then hand the outcome to the loop."""
        outcome: int | BaseException
        try:
            outcome = _send_opened(self)
        except Exception as e:
            outcome = e
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this
            self.loop.call_soon_threadsafe(self._end, outcome)

    def _end(self, outcome: int | BaseException) -> None:
        self.ended = True
        if self.future.done():
            return  # cancelled: its waiter has gone
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


def _send_opened(job: _Job) -> int:
    """Blocking: open the file (one thread hop for the open and the send alike), send, close
    the file and the socket's duplicate descriptor."""
    # A socket object to send the head with a flag, and to close the duplicate by; never
    # switched to blocking mode (the descriptor shares the transport's non-blocking flag).
    with socket.socket(fileno=job.sock) as conn:
        file = job.opener()
        try:
            return _send(conn, file, job)
        finally:
            os.close(file)


def _send(conn: socket.socket, file: int, job: _Job) -> int:
    """Blocking: the head, then sendfile until done, the socket fails, or no progress for the
    stall limit. The head goes with MSG_MORE: the kernel holds it for the file's first bytes,
    so the client gets one segment (and one wake-up) where it would get two."""
    sock, offset, length, closing = conn.fileno(), job.offset, job.length, job.closing
    head = memoryview(job.head)
    sent = 0
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    waited = 0.0
    while sent < length:
        if job.stop or closing():  # plain flags' reads: safe from this thread
            break
        try:
            if head:
                head = head[conn.send(head, socket.MSG_MORE) :]
                continue
            n = os.sendfile(sock, file, offset + sent, length - sent)
        except BlockingIOError:
            if not poller.poll(POLL_MS):
                waited += POLL_MS / 1000
                if waited >= job.stall:
                    break
            continue
        except OSError:
            break  # the client went away: what went is counted, the rest is the caller's error
        if n == 0:
            break  # the file ended early (it was truncated): the answer is cut short
        sent += n
        waited = 0.0
    return sent


__all__ = ["ThreadedSendfile"]
