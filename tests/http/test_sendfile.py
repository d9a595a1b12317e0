"""Sender threads (http/sendfile.py): a whole range sent, a stalled client given up after the
stall limit, a cancelled send stopped, and slots taken and given back."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from elastic_api.http.sendfile import ThreadedSendfile

MiB = 1 << 20


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * (16 * MiB // 256))
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_range_is_sent_whole(data_file):
    sender = ThreadedSendfile(2, stall_seconds=5)
    before = open_fds()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    received = bytearray()

    def receive() -> None:
        while len(received) < 5 * MiB:
            received.extend(theirs.recv(MiB))

    try:
        reading = asyncio.create_task(asyncio.to_thread(receive))
        sent = await sender.send(ours.fileno(), lambda: os.open(data_file, os.O_RDONLY), 1000, 5 * MiB, lambda: False)
        await reading
        assert sent == 5 * MiB and bytes(received) == data_file.read_bytes()[1000 : 1000 + 5 * MiB]
        assert open_fds() == before + 2  # the socket pair: the file and the duplicate are closed
    finally:
        ours.close()
        theirs.close()
        sender.close()


async def test_a_held_head_goes_first_and_is_not_counted_as_body(data_file):
    sender = ThreadedSendfile(1, stall_seconds=5)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n"
    received = bytearray()

    def receive() -> None:
        while len(received) < len(head) + 65536:
            received.extend(theirs.recv(MiB))

    try:
        reading = asyncio.create_task(asyncio.to_thread(receive))
        sent = await sender.send(ours.fileno(), lambda: os.open(data_file, os.O_RDONLY), 7, 65536, lambda: False, head)
        await reading
        assert sent == 65536 and bytes(received) == head + data_file.read_bytes()[7 : 7 + 65536]
    finally:
        ours.close()
        theirs.close()
        sender.close()


async def test_a_stalled_client_is_given_up_and_a_cancel_stops_the_thread(data_file):
    sender = ThreadedSendfile(1, stall_seconds=0.5)
    before = open_fds()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        assert sender.try_take() and not sender.try_take()  # one thread: the next falls back
        sent = await asyncio.wait_for(
            sender.send(ours.fileno(), lambda: os.open(data_file, os.O_RDONLY), 0, 16 * MiB, lambda: False), 10
        )
        assert 0 < sent < 16 * MiB  # what fit in the socket's buffers, then nothing for 0.5 s
        sender.give_back()
        assert sender.try_take()
        task = asyncio.create_task(
            sender.send(ours.fileno(), lambda: os.open(data_file, os.O_RDONLY), 0, 16 * MiB, lambda: False)
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)  # the thread saw the stop within its poll interval
        assert open_fds() == before + 2
    finally:
        ours.close()
        theirs.close()
        sender.close()
