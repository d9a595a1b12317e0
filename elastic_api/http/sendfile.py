"""sendfile from worker threads: a download's bytes move on every core, not the event loop's.

asyncio's loop.sendfile runs each os.sendfile call on the event loop, a socket buffer's worth at a
time, between every other request's work: measured, 4 MiB reads reached 0.44-0.46 of a bare
threaded sendfile server. Here the kernel copy runs in a thread (os.sendfile drops the GIL), on
a duplicate of the connection's descriptor, waiting for room with poll, after the transport has
nothing buffered (the answer's head went out first) and with its reading paused, as asyncio does.

Threads are a bounded pool of their own (`sendfile_threads`): a client that stops reading holds
one until `sendfile_stall` seconds pass without progress, and when all are busy a download falls
back to the loop's sendfile, so a few stalled clients can never starve the other thread users."""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Milliseconds between looks at whether the send was given up (the transport closed, the
# handler cancelled) while the client's socket has no room.
POLL_MS = 200


class ThreadedSendfile:
    def __init__(self, threads: int, stall_seconds: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="sendfile")
        self._free = max(1, threads)
        self._stall = stall_seconds

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
        bytes sent. Call it with a slot taken. On cancellation the thread is told to stop, and
        waited for."""
        fd = os.dup(sock_fd)  # ours alone: the transport closing its descriptor cannot reuse it under us
        stop = _Stop()
        try:
            work = self._executor.submit(_send_opened, fd, file, offset, length, stop, closing, self._stall, head)
        except BaseException:
            os.close(fd)
            raise
        # The thread closes fd when it ends (off the loop: a system call the loop no longer
        # makes); a send the pool dropped unrun (it was shut down) closes it here.
        work.add_done_callback(lambda done: os.close(fd) if done.cancelled() else None)
        future = asyncio.wrap_future(work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.asked = True
            await asyncio.wait([future])
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Stop:
    """The loop's word to a sender thread to give up: a plain attribute, set on one thread and
    read on the other (a threading.Event, with its lock and condition, cost more per send)."""

    __slots__ = ("asked",)

    def __init__(self) -> None:
        self.asked = False


def _send_opened(
    sock: int,
    opener: Callable[[], int],
    offset: int,
    length: int,
    stop: _Stop,
    closing: Callable[[], bool],
    stall: float,
    head: bytes,
) -> int:
    """Blocking: open the file (one thread hop for the open and the send alike), send, close
    the file and the socket's duplicate descriptor."""
    # A socket object to send the head with a flag, and to close the duplicate by; never
    # switched to blocking mode (the descriptor shares the transport's non-blocking flag).
    with socket.socket(fileno=sock) as conn:
        file = opener()
        try:
            return _send(conn, file, offset, length, stop, closing, stall, memoryview(head))
        finally:
            os.close(file)


def _send(
    conn: socket.socket,
    file: int,
    offset: int,
    length: int,
    stop: _Stop,
    closing: Callable[[], bool],
    stall: float,
    head: memoryview,
) -> int:
    """Blocking: the head, then sendfile until done, the socket fails, or no progress for
    `stall` seconds. The head goes with MSG_MORE: the kernel holds it for the file's first
    bytes, so the client gets one segment (and one wake-up) where it would get two."""
    sock = conn.fileno()
    sent = 0
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    waited = 0.0
    while sent < length:
        if stop.asked or closing():  # a plain flag's read: safe from this thread
            break
        try:
            if head:
                head = head[conn.send(head, socket.MSG_MORE) :]
                continue
            n = os.sendfile(sock, file, offset + sent, length - sent)
        except BlockingIOError:
            if not poller.poll(POLL_MS):
                waited += POLL_MS / 1000
                if waited >= stall:
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
