"""A Unix-socket relay in front of libvirtd's socket: cutting it makes a host unreachable to one
client (the app under test) while libvirtd keeps serving everyone else on the machine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"


class SocketRelay:
    """Listens on `path` and relays each connection to `target`, on a loop of its own thread (the
    client's blocking libvirt calls never wait on the test's loop). `cut()` closes the listener
    and every relayed connection, as a host going away does; `restore()` listens again."""

    def __init__(self, path: Path, target: str = LIBVIRT_SOCKET) -> None:
        self.path = path
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="socket-relay", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _run(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    def restore(self) -> None:
        self._run(self._listen())

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._relay, path=str(self.path))

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


class TcpRelay(SocketRelay):
    """The same relay listening on TCP on loopback: libvirt's `qemu+tcp` transport (its TCP
    socket, keepalives and RPC framing) reaches the local libvirtd through it, as a remote host's
    libvirtd with `listen_tcp` would be reached, without reconfiguring the libvirtd every other
    test shares. What differs from a real TCP listener is only the server's side of the
    authentication: libvirtd applies its Unix socket's policy (the relay connects as root), not
    `auth_tcp`. The port stays the same across cut() and restore(), as a host's address does."""

    def __init__(self, target: str = LIBVIRT_SOCKET) -> None:
        super().__init__(Path("/nonexistent/no-unix-socket"), target)
        self.port = 0

    @property
    def uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
