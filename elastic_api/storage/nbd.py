"""A small asyncio NBD client: fixed newstyle handshake, NBD_OPT_GO, simple replies, pipelined requests."""

from __future__ import annotations

import asyncio
import errno
import itertools
import struct
from dataclasses import dataclass

from elastic_api.errors import ElasticError, FailedError, FullError

# Numbers from the NBD protocol (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md).
NBD_MAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

TRANSMIT_READ_ONLY = 1 << 1
TRANSMIT_SEND_FLUSH = 1 << 2
TRANSMIT_SEND_WRITE_ZEROES = 1 << 6

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_WRITE_ZEROES = 6

_REQUEST = struct.Struct(">IHHQQI")
_REPLY = struct.Struct(">IIQ")
# Without a block-size answer the protocol promises 32 MiB payloads; requests never exceed that.
DEFAULT_MAX_PAYLOAD = 32 << 20
# Option replies during the handshake are small; a huge one is a broken or hostile peer.
MAX_OPTION_REPLY = 64 << 10
# One NBD request carries a 32-bit length; zeroing in 1 GiB pieces stays well inside it.
MAX_ZEROES = 1 << 30
# Bytes of a volume striped onto one lane before the next (see NbdLanes): the size of the pool's
# own requests, so each goes to one daemon whole.
LANE_STRIPE = 1 << 20
# A stripe boundary never splits a sector: 4 KiB covers every sector size qemu uses.
SECTOR_ALIGN = 4096


class ProtocolError(FailedError):
    """The peer broke the NBD protocol."""


def _reply_error(code: int) -> ElasticError:
    if code == errno.ENOSPC:
        return FullError("the drive pool has no room for this write")
    return FailedError("the drive's storage refused the request")


@dataclass
class _Pending:
    future: asyncio.Future[bytes]
    length: int  # payload bytes that follow a successful reply (reads only)


class NbdClient:
    """One connection to an NBD export. Requests may be issued concurrently: each is tagged with a
    handle and a single receiver task matches replies to them, so several stay in flight."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        size: int,
        flags: int,
        max_payload: int,
        timeout: float | None = None,
    ) -> None:
        self.size = size
        # Seconds one request may take, from its turn to send to its reply; past that the peer is
        # taken for frozen and the connection is dropped, failing every request on it.
        self.timeout = timeout
        self.timed_out = False
        self.flags = flags
        self.max_payload = max_payload
        self._reader, self._writer = reader, writer
        self._pending: dict[int, _Pending] = {}
        self._handles = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._broken: ElasticError | None = None
        self._receiver = asyncio.get_running_loop().create_task(self._receive())

    @classmethod
    async def connect(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        export: str,
        request_timeout: float | None = None,
    ) -> NbdClient:
        """Negotiate `export` over an open stream (fixed newstyle, NBD_OPT_GO)."""
        try:
            magic, option_magic, server_flags = struct.unpack(">QQH", await reader.readexactly(18))
            if magic != NBD_MAGIC or option_magic != IHAVEOPT or not server_flags & FLAG_FIXED_NEWSTYLE:
                raise ProtocolError("the drive's storage server does not speak fixed newstyle NBD")
            writer.write(struct.pack(">I", FLAG_FIXED_NEWSTYLE | (server_flags & FLAG_NO_ZEROES)))
            name = export.encode()
            data = struct.pack(">I", len(name)) + name + struct.pack(">HH", 1, INFO_BLOCK_SIZE)
            writer.write(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
            await writer.drain()
            size: int | None = None
            flags, max_payload = 0, DEFAULT_MAX_PAYLOAD
            while True:
                magic, option, kind, length = struct.unpack(">QIII", await reader.readexactly(20))
                if magic != OPTION_REPLY_MAGIC or option != OPT_GO or length > MAX_OPTION_REPLY:
                    raise ProtocolError("the drive's storage server sent a malformed option reply")
                payload = await reader.readexactly(length)
                if kind == REP_ACK:
                    break
                if kind & REP_FLAG_ERROR:
                    raise FailedError("the drive's storage server refused the export")
                if kind == REP_INFO and len(payload) >= 2:
                    (info,) = struct.unpack(">H", payload[:2])
                    if info == INFO_EXPORT and len(payload) == 12:
                        size, flags = struct.unpack(">QH", payload[2:])
                    elif info == INFO_BLOCK_SIZE and len(payload) == 14:
                        max_payload = min(struct.unpack(">III", payload[2:])[2], DEFAULT_MAX_PAYLOAD)
            if size is None:
                raise ProtocolError("the drive's storage server did not describe the export")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()
            raise FailedError("the drive's storage server closed the connection") from None
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, size, flags, max_payload, request_timeout)

    @property
    def closed(self) -> bool:
        return self._broken is not None

    async def read(self, offset: int, length: int) -> bytes:
        if length <= self.max_payload:
            return await self._request(CMD_READ, offset, length)
        pieces = [
            self._request(CMD_READ, start, min(self.max_payload, offset + length - start))
            for start in range(offset, offset + length, self.max_payload)
        ]
        return b"".join(await asyncio.gather(*pieces))

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if len(view) <= self.max_payload:
            await self._request(CMD_WRITE, offset, len(view), view)
            return
        await asyncio.gather(
            *(
                self._request(CMD_WRITE, offset + start, len(piece), piece)
                for start in range(0, len(view), self.max_payload)
                for piece in (view[start : start + self.max_payload],)
            )
        )

    async def write_zeroes(self, offset: int, length: int) -> None:
        """Zero a range. Without NBD_CMD_FLAG_NO_HOLE, so the server may deallocate it: zero stays free."""
        if self.flags & TRANSMIT_SEND_WRITE_ZEROES:
            pieces = [
                self._request(CMD_WRITE_ZEROES, start, min(MAX_ZEROES, offset + length - start))
                for start in range(offset, offset + length, MAX_ZEROES)
            ]
        else:
            zeros = bytes(min(length, self.max_payload))
            pieces = [
                self._request(CMD_WRITE, start, n, memoryview(zeros)[:n])
                for start in range(offset, offset + length, len(zeros))
                for n in (min(len(zeros), offset + length - start),)
            ]
        await asyncio.gather(*pieces)

    async def flush(self) -> None:
        """Make every completed write durable (the server's caches and the file's fdatasync)."""
        if self.flags & TRANSMIT_SEND_FLUSH:
            await self._request(CMD_FLUSH, 0, 0)

    async def close(self) -> None:
        """Tell the server we are leaving (NBD_CMD_DISC has no reply), then close the socket;
        requests still waiting for a reply fail."""
        if self._broken is None:
            self._broken = FailedError("the drive's storage connection is closed")
            # A send in progress holds the lock and may be stuck on a server that stopped reading:
            # then just hang up, which the server copes with too.
            if not self._send_lock.locked():
                try:
                    async with self._send_lock:
                        self._writer.write(_REQUEST.pack(REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
                        await self._writer.drain()
                except (ConnectionError, OSError):
                    pass
        self._writer.close()
        self._receiver.cancel()
        await asyncio.wait([self._receiver])
        self._fail(self._broken)

    async def _request(
        self, command: int, offset: int, length: int, payload: memoryview | None = None, flags: int = 0
    ) -> bytes:
        if self.timeout is None:
            return await self._exchange(command, offset, length, payload, flags)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(command, offset, length, payload, flags)
        except TimeoutError:
            self._time_out()
            raise FailedError(
                f"the drive's storage did not answer within {self.timeout:g} seconds; it is being restarted"
            ) from None

    def _time_out(self) -> None:
        """A request outlived its deadline: the peer is frozen or wedged. Every request on the
        connection fails now, and the socket is dropped without waiting to send anything more."""
        if not self.timed_out:
            self.timed_out = True
            self._fail(FailedError(f"the drive's storage did not answer within {self.timeout:g} seconds"))
            self._writer.transport.abort()

    async def _exchange(
        self, command: int, offset: int, length: int, payload: memoryview | None = None, flags: int = 0
    ) -> bytes:
        if self._broken is not None:
            raise FailedError(self._broken.message)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            if self._broken is not None:
                raise FailedError(self._broken.message)
            handle = next(self._handles)
            # Registered only once the request is certainly sent: the receiver must know how many
            # payload bytes follow every reply, even for a request whose caller has gone away.
            self._pending[handle] = _Pending(future, length if command == CMD_READ else 0)
            self._writer.write(_REQUEST.pack(REQUEST_MAGIC, flags, command, handle, offset, length))
            if payload is not None:
                self._writer.write(payload)
            try:
                await self._writer.drain()
            except (ConnectionError, OSError):
                self._fail(FailedError("the drive's storage connection was lost"))
        return await future

    async def _receive(self) -> None:
        try:
            while True:
                magic, error, handle = _REPLY.unpack(await self._reader.readexactly(_REPLY.size))
                pending = self._pending.get(handle)
                if magic != SIMPLE_REPLY_MAGIC or pending is None:
                    raise ProtocolError("the drive's storage server sent a malformed reply")
                data = b""
                if pending.length and not error:
                    data = await self._reader.readexactly(pending.length)
                # Only now: a connection lost mid-payload must still fail this request.
                del self._pending[handle]
                if pending.future.done():
                    continue  # its caller was cancelled; the payload had to be consumed anyway
                if error:
                    pending.future.set_exception(_reply_error(error))
                else:
                    pending.future.set_result(data)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._fail(FailedError("the drive's storage connection was lost"))
        except ProtocolError as e:
            self._fail(e)
            self._writer.close()

    def _fail(self, error: ElasticError) -> None:
        if self._broken is None:
            self._broken = error
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(FailedError(self._broken.message))
        self._pending.clear()


class NbdLanes:
    """Connections to several daemons serving one volume (lanes), so work qemu does on a daemon's
    one thread (the luks driver encrypts and decrypts there) runs on as many cores as there are
    lanes. The volume is striped over the lanes in `stripe`-sized blocks: every byte always goes
    through the same daemon, which therefore orders the requests that share a sector exactly as
    one daemon would (an unaligned write is a read-modify-write of its sectors). Offers the same
    calls as NbdClient; one lane is just that client."""

    def __init__(self, clients: list[NbdClient], stripe: int = LANE_STRIPE) -> None:
        if not clients or stripe <= 0 or stripe % SECTOR_ALIGN:
            raise ValueError("at least one lane, and a stripe of whole 4 KiB blocks")
        self._clients = clients
        self._stripe = stripe
        self.size = min(client.size for client in clients)
        self.flags = clients[0].flags
        self.max_payload = min(client.max_payload for client in clients)

    @property
    def lanes(self) -> int:
        return len(self._clients)

    @property
    def closed(self) -> bool:
        return any(client.closed for client in self._clients)

    @property
    def timed_out(self) -> bool:
        return any(client.timed_out for client in self._clients)

    def _pieces(self, offset: int, length: int) -> list[tuple[NbdClient, int, int]]:
        """(lane, start, length) for each stripe block the range touches."""
        if len(self._clients) == 1:
            return [(self._clients[0], offset, length)]
        pieces = []
        start, end = offset, offset + length
        while start < end:
            block = start // self._stripe
            stop = min(end, (block + 1) * self._stripe)
            pieces.append((self._clients[block % len(self._clients)], start, stop - start))
            start = stop
        return pieces

    async def read(self, offset: int, length: int) -> bytes:
        pieces = self._pieces(offset, length)
        if len(pieces) == 1:
            return await pieces[0][0].read(offset, length)
        return b"".join(await asyncio.gather(*(lane.read(start, n) for lane, start, n in pieces)))

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        await asyncio.gather(
            *(
                lane.write(start, view[start - offset : start - offset + n])
                for lane, start, n in self._pieces(offset, len(view))
            )
        )

    async def write_zeroes(self, offset: int, length: int) -> None:
        await asyncio.gather(*(lane.write_zeroes(start, n) for lane, start, n in self._pieces(offset, length)))

    async def flush(self) -> None:
        """Every lane's completed writes made durable (each daemon has its own descriptor)."""
        await asyncio.gather(*(client.flush() for client in self._clients))

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients))
