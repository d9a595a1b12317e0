"""The NBD client against a scripted server (protocol edge cases) and a real qemu-storage-daemon."""

from __future__ import annotations

from typing import cast

import asyncio
import os
import socket
import struct
import subprocess

import pytest

from elastic_api.errors import FailedError, FullError
from elastic_api.storage import nbd
from elastic_api.storage.nbd import NbdClient
from tests.storage.conftest import MiB


class Server:
    """The server's end of a socket pair: the test plays the server byte by byte."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def greet(self, magic=nbd.NBD_MAGIC, flags=nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES):
        self.writer.write(struct.pack(">QQH", magic, nbd.IHAVEOPT, flags))

    async def option(self):
        await self.reader.readexactly(4)  # client flags
        _, option, length = struct.unpack(">QII", await self.reader.readexactly(16))
        return option, await self.reader.readexactly(length)

    def reply(self, kind, payload=b""):
        self.writer.write(struct.pack(">QIII", nbd.OPTION_REPLY_MAGIC, nbd.OPT_GO, kind, len(payload)) + payload)

    async def go(self, size=MiB, flags=0x4D):
        self.greet()
        option, data = await self.option()
        assert option == nbd.OPT_GO and data[4 : 4 + 4] == b"disk"
        self.reply(nbd.REP_INFO, struct.pack(">HQH", nbd.INFO_EXPORT, size, flags))
        self.reply(nbd.REP_INFO, struct.pack(">HIII", nbd.INFO_BLOCK_SIZE, 1, 4096, 32 * MiB))
        self.reply(nbd.REP_ACK)

    async def request(self):
        magic, flags, command, handle, offset, length = struct.unpack(">IHHQQI", await self.reader.readexactly(28))
        assert magic == nbd.REQUEST_MAGIC
        payload = await self.reader.readexactly(length) if command == nbd.CMD_WRITE else b""
        return command, handle, offset, length, payload

    def answer(self, handle, error=0, data=b""):
        self.writer.write(struct.pack(">IIQ", nbd.SIMPLE_REPLY_MAGIC, error, handle) + data)


@pytest.fixture
async def pair():
    ours, theirs = socket.socketpair()
    client_streams = await asyncio.open_unix_connection(sock=ours)
    server = Server(*await asyncio.open_unix_connection(sock=theirs))
    yield client_streams, server
    server.writer.close()
    client_streams[1].close()


async def connected(pair, request_timeout=None, **go):
    (reader, writer), server = pair
    connecting = asyncio.ensure_future(NbdClient.connect(reader, writer, "disk", request_timeout))
    await server.go(**go)
    return await connecting, server


async def test_handshake_learns_size_flags_and_payload_limit(pair):
    client, _ = await connected(pair, size=5 * MiB)
    assert client.size == 5 * MiB and client.flags & nbd.TRANSMIT_SEND_FLUSH and client.max_payload == 32 * MiB
    await client.close()
    assert client.closed


async def test_a_server_that_is_not_nbd(pair):
    (reader, writer), server = pair
    connecting = asyncio.ensure_future(NbdClient.connect(reader, writer, "disk"))
    server.greet(magic=0x1234)
    with pytest.raises(FailedError):
        await connecting


async def test_a_server_that_hangs_up_in_the_handshake(pair):
    (reader, writer), server = pair
    connecting = asyncio.ensure_future(NbdClient.connect(reader, writer, "disk"))
    server.greet()
    await server.option()
    server.writer.close()
    with pytest.raises(FailedError, match="closed"):
        await connecting


async def test_a_refused_export(pair):
    (reader, writer), server = pair
    connecting = asyncio.ensure_future(NbdClient.connect(reader, writer, "disk"))
    server.greet()
    await server.option()
    server.reply(nbd.REP_FLAG_ERROR | 6)  # NBD_REP_ERR_UNKNOWN
    with pytest.raises(FailedError, match="refused"):
        await connecting


async def test_replies_out_of_order_reach_their_requests(pair):
    client, server = await connected(pair)
    first = asyncio.ensure_future(client.read(0, 3))
    second = asyncio.ensure_future(client.read(100, 5))
    requests = [await server.request(), await server.request()]
    (_, h1, o1, l1, _), (_, h2, o2, l2, _) = requests
    assert (o1, l1, o2, l2) == (0, 3, 100, 5)
    server.answer(h2, data=b"world")
    server.answer(h1, data=b"abc")
    assert await first == b"abc" and await second == b"world"
    await client.close()


async def test_server_errors_map_to_our_errors(pair):
    client, server = await connected(pair)
    writing = asyncio.ensure_future(client.write(0, b"data"))
    command, handle, _, _, payload = await server.request()
    assert command == nbd.CMD_WRITE and payload == b"data"
    server.answer(handle, error=28)  # ENOSPC
    with pytest.raises(FullError):
        await writing
    reading = asyncio.ensure_future(client.read(0, 10))
    _, handle, _, _, _ = await server.request()
    server.answer(handle, error=5)  # EIO, and no payload follows an error
    with pytest.raises(FailedError):
        await reading
    zeroing = asyncio.ensure_future(client.write_zeroes(0, 4096))
    command, handle, _, length, _ = await server.request()
    assert command == nbd.CMD_WRITE_ZEROES and length == 4096
    server.answer(handle)
    await zeroing
    assert not client.closed
    await client.close()


async def test_a_lost_connection_fails_every_request(pair):
    client, server = await connected(pair)
    pending = [asyncio.ensure_future(client.read(i, 1)) for i in range(3)]
    for _ in pending:
        await server.request()
    server.writer.close()
    for request in pending:
        with pytest.raises(FailedError):
            await request
    assert client.closed
    with pytest.raises(FailedError):
        await client.flush()
    await client.close()


async def test_a_server_that_stops_answering_fails_every_request_at_the_deadline(pair):
    client, server = await connected(pair, request_timeout=0.5)
    # Before: a server that answers in time is served as ever, deadline or not.
    reading = asyncio.ensure_future(client.read(0, 3))
    _, handle, _, _, _ = await server.request()
    server.answer(handle, data=b"abc")
    assert await reading == b"abc" and not client.timed_out
    # Then it freezes: the requests in flight fail at the deadline, not whenever it wakes.
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending = [asyncio.ensure_future(client.write(i, b"x")) for i in range(3)]
    for _ in pending:
        await server.request()
    for request in pending:
        with pytest.raises(FailedError, match="did not answer within 0.5 seconds"):
            await request
    assert 0.5 <= loop.time() - started < 30
    assert client.timed_out and client.closed
    with pytest.raises(FailedError):
        await client.flush()  # the connection is dropped: nothing more goes to a frozen peer
    assert await server.reader.read() == b""  # aborted: the server sees the end of the stream
    await client.close()


async def test_a_reply_to_nothing_is_a_protocol_error(pair):
    client, server = await connected(pair)
    reading = asyncio.ensure_future(client.read(0, 1))
    await server.request()
    server.answer(999, data=b"x")
    with pytest.raises(FailedError):
        await reading
    assert client.closed
    await client.close()


async def test_a_cancelled_read_still_consumes_its_payload(pair):
    client, server = await connected(pair)
    first = asyncio.ensure_future(client.read(0, 4))
    _, h1, _, _, _ = await server.request()
    first.cancel()
    second = asyncio.ensure_future(client.read(4, 4))
    _, h2, _, _, _ = await server.request()
    server.answer(h1, data=b"gone")
    server.answer(h2, data=b"kept")
    assert await second == b"kept"
    await client.close()


async def test_without_write_zeroes_the_client_writes_zeros(pair):
    client, server = await connected(pair, flags=0x05)  # HAS_FLAGS | SEND_FLUSH only
    zeroing = asyncio.ensure_future(client.write_zeroes(10, 100))
    command, handle, offset, length, payload = await server.request()
    assert (command, offset, length, payload) == (nbd.CMD_WRITE, 10, 100, bytes(100))
    server.answer(handle)
    await zeroing
    await client.close()


async def test_against_qemu_storage_daemon(tmp_path):
    image = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), str(64 * MiB)], check=True)
    path = tmp_path / "s"
    process = subprocess.Popen(
        [
            "qemu-storage-daemon",
            "--blockdev",
            f"driver=file,node-name=f,filename={image}",
            "--blockdev",
            "driver=qcow2,node-name=disk,file=f",
            "--nbd-server",
            f"addr.type=unix,addr.path={path}",
            "--export",
            "type=nbd,id=e,node-name=disk,name=disk,writable=on",
        ]
    )
    try:
        while not path.exists():  # the condition we wait on; the daemon creates it once listening
            assert process.poll() is None
            await asyncio.sleep(0.01)
        client = await NbdClient.connect(*await asyncio.open_unix_connection(str(path)), "disk")
        assert client.size == 64 * MiB
        data = os.urandom(40 * MiB)  # more than one payload: split into several requests
        await client.write(MiB, data)
        await client.write_zeroes(2 * MiB, MiB)
        await client.flush()
        got = await client.read(0, 42 * MiB)
        assert got == bytes(MiB) + data[:MiB] + bytes(MiB) + data[2 * MiB :] + bytes(MiB)
        await client.close()
    finally:
        process.terminate()
        process.wait()
    subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(image)], check=True)


def clients(lanes: list[Lane]) -> list[nbd.NbdClient]:
    """Stand-ins where the lanes expect real NBD connections (they answer the same calls)."""
    return cast(list[nbd.NbdClient], lanes)


class Lane:
    """A stand-in connection that keeps a volume in memory and records what it was asked."""

    def __init__(self, volume: bytearray, max_payload: int = 32 * MiB):
        self.volume, self.size, self.flags, self.max_payload = volume, len(volume), 0, max_payload
        self.closed = False
        self.calls: list[tuple[str, int, int]] = []
        self.flushed = 0

    async def read(self, offset, length):
        self.calls.append(("read", offset, length))
        return bytes(self.volume[offset : offset + length])

    async def write(self, offset, data):
        self.calls.append(("write", offset, len(data)))
        self.volume[offset : offset + len(data)] = data

    async def write_zeroes(self, offset, length):
        self.calls.append(("zeroes", offset, length))
        self.volume[offset : offset + length] = bytes(length)

    async def flush(self):
        self.flushed += 1

    async def close(self):
        self.closed = True


async def test_lanes_send_every_byte_through_the_lane_of_its_stripe():
    stripe = 64 * 1024
    volume = bytearray(os.urandom(20 * stripe))
    lanes = [Lane(volume) for _ in range(3)]
    striped = nbd.NbdLanes(clients(lanes), stripe=stripe)
    ranges = [(0, stripe), (stripe - 100, 300), (5, 7 * stripe + 11), (19 * stripe - 1, 1)]
    for offset, length in ranges:
        assert await striped.read(offset, length) == bytes(volume[offset : offset + length])
    data = os.urandom(4 * stripe + 3)
    await striped.write(2 * stripe - 1, data)
    assert bytes(volume[2 * stripe - 1 : 6 * stripe + 2]) == data
    await striped.write_zeroes(stripe // 2, 2 * stripe)
    assert volume[stripe // 2 : stripe // 2 + 2 * stripe] == bytes(2 * stripe)
    for index, lane in enumerate(lanes):
        assert lane.calls
        for _, offset, length in lane.calls:
            first, last = offset // stripe, (offset + length - 1) // stripe
            assert first == last and first % 3 == index  # within one stripe, and that stripe's lane
    await striped.flush()
    assert [lane.flushed for lane in lanes] == [1, 1, 1]
    lanes[1].closed = True
    assert striped.closed
    await striped.close()
    assert all(lane.closed for lane in lanes)


async def test_one_lane_takes_requests_whole():
    volume = bytearray(8 * MiB)
    lane = Lane(volume)
    single = nbd.NbdLanes(clients([lane]))
    await single.write(MiB - 5, bytes(3 * MiB))
    await single.read(0, 8 * MiB)
    assert lane.calls == [("write", MiB - 5, 3 * MiB), ("read", 0, 8 * MiB)]


def test_lanes_need_a_lane_and_whole_blocks():
    with pytest.raises(ValueError):
        nbd.NbdLanes([])
    with pytest.raises(ValueError):
        nbd.NbdLanes(clients([Lane(bytearray(8192))]), stripe=1000)
