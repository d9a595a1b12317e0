"""Volumes served over NBD by qemu-storage-daemon (qcow2, and LUKS-encrypted raw or qcow2): a
drive's daemons (one, or one per lane for an encrypted raw drive) are kept while it is in use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elastic_api.errors import FailedError
from elastic_api.storage.nbd import NbdClient, NbdLanes

# The export name inside the daemon; each daemon serves exactly one drive.
EXPORT = "disk"
# sun_path holds 108 bytes with its NUL; a longer pool path is reached through /proc/self/fd.
SUN_PATH_MAX = 107
# Bytes of the daemon's stderr kept for the log when it fails.
STDERR_KEPT = 4096
# The block drivers an export opens a volume with: qcow2, or luks (an encrypted raw volume).
DRIVERS = ("qcow2", "luks")
# glibc hands each allocation above 128 KiB to a fresh mmap until its dynamic threshold has risen,
# so a new daemon page-faults and zeroes a new bounce buffer for every 1 MiB request (measured: a
# third more CPU per byte on encrypted reads). Fixed thresholds keep those buffers on the heap.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
# The id of the LUKS passphrase object in the daemon.
SECRET_ID = "key"


def qemu_escape(text: str) -> str:
    """QEMU's option syntax splits on commas; a literal comma is written twice."""
    return text.replace(",", ",,")


def daemon_env() -> dict[str, str]:
    """Our environment with the daemon's malloc tunables added (after any the operator set)."""
    tunables = ":".join(filter(None, (os.environ.get("GLIBC_TUNABLES"), MALLOC_TUNABLES)))
    return {**os.environ, "GLIBC_TUNABLES": tunables}


def secret_pipe(secret: bytes) -> int:
    """A pipe's read end already holding the whole passphrase (far below a pipe's buffer), for a
    child to read as /proc/self/fd/N: the passphrase never sits in a file or on a command line."""
    read, write = os.pipe()
    try:
        os.write(write, secret)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read


def secret_object(fd: int) -> str:
    """The --object argument that makes a qemu tool read the passphrase from inherited fd `fd`."""
    return f"secret,id={SECRET_ID},format=raw,file=/proc/self/fd/{fd}"


@dataclass(eq=False)
class _Export:
    drive: str
    path: Path
    driver: str = "qcow2"
    secret: bytes | None = field(default=None, repr=False)
    users: int = 0
    lanes: int = 1
    client: NbdLanes | None = None
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    started: asyncio.Task[None] | None = None
    stopping: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    stderr: bytearray = field(default_factory=bytearray)
    drains: list[asyncio.Task[None]] = field(default_factory=list)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


class Exports:
    """Starts a qemu-storage-daemon per qcow2 drive on first use and stops it once nobody has used
    it for `idle_seconds`, so a burst of 4 MiB writes pays for one daemon, not one per request.

    The daemon gets a listening socket we made and already connected to, then unlinked: there is
    no start-up race to poll for, and no path left where another local process could connect."""

    def __init__(
        self,
        pool_dir: Path,
        *,
        daemon: str,
        idle_seconds: float,
        luks_lanes: int = 1,
        start_timeout: float = 30.0,
        pdeathsig: str | None = None,
        request_timeout: float | None = None,
    ) -> None:
        if luks_lanes < 1:
            raise ValueError("luks_lanes must be at least 1")
        self._dir = pool_dir
        # qemu's luks driver encrypts on its daemon's main thread: an encrypted raw volume gets
        # this many daemons (lanes), so its bytes are encrypted on as many cores. A qcow2 volume
        # keeps one, since each daemon would cache the qcow2 metadata on its own (and qcow2
        # encrypts in qemu's thread pool anyway).
        self._luks_lanes = luks_lanes
        self._daemon = daemon
        self._idle_seconds = idle_seconds
        self._start_timeout = start_timeout
        # Seconds one NBD request may take (None: no deadline); a daemon that misses it is killed.
        self._request_timeout = request_timeout
        # setpriv --pdeathsig: a daemon outliving a crashed server would keep its image locked.
        self._pdeathsig = pdeathsig
        self._exports: dict[str, _Export] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = logging.getLogger(__name__)

    def running(self) -> set[str]:
        """Drives whose export is up or starting."""
        return set(self._exports)

    @contextlib.asynccontextmanager
    async def use(
        self, drive: str, path: Path, *, driver: str = "qcow2", secret: bytes | None = None
    ) -> AsyncIterator[NbdLanes]:
        """The drive's NBD connection, held open for the duration of the block. `driver` is the
        volume's block driver; an encrypted volume needs its LUKS passphrase as `secret`."""
        if driver not in DRIVERS or (driver == "luks" and secret is None):
            raise FailedError("the drive's storage cannot be served")
        export = await self._acquire(drive, path, driver, secret)
        try:
            assert export.client is not None
            yield export.client
        finally:
            self._release(export)
            if export.client is not None and export.client.timed_out and export.stopping is None:
                # A frozen daemon: kill it now (it would never flush), so the next use starts afresh.
                self._log.error(
                    "qemu-storage-daemon for drive %s missed the %g s deadline: restarting it",
                    drive,
                    self._request_timeout,
                )
                self._spawn(self._stop(export, wait=False))

    async def stop(self, drive: str, *, wait: bool) -> None:
        """Stop the drive's export: after its current users finish (`wait`), or now, failing them
        (a destroyed drive has nothing left worth finishing)."""
        export = self._exports.get(drive)
        if export is not None:
            await self._stop(export, wait=wait)

    async def close(self) -> None:
        await asyncio.gather(*(self._stop(export, wait=False) for export in list(self._exports.values())))
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _acquire(self, drive: str, path: Path, driver: str, secret: bytes | None) -> _Export:
        while True:
            export = self._exports.get(drive)
            if export is None:
                export = _Export(drive, path, driver, secret, lanes=self._luks_lanes if driver == "luks" else 1)
                self._exports[drive] = export
                export.started = self._spawn(self._start(export))
            elif export.stopping is not None:
                await export.stopped.wait()
                continue
            export.users += 1
            export.idle.clear()
            if export.timer is not None:
                export.timer.cancel()
                export.timer = None
            assert export.started is not None
            try:
                # Shielded: one caller giving up must not abort a start the others wait for.
                await asyncio.shield(export.started)
            except BaseException:
                self._release(export)
                raise
            assert export.client is not None
            if not export.client.closed:
                return export
            # The daemon died or the connection broke: replace it with a fresh one.
            self._release(export)
            await self._stop(export, wait=False)

    def _release(self, export: _Export) -> None:
        export.users -= 1
        if export.users:
            return
        export.idle.set()
        if export.stopping is None and self._exports.get(export.drive) is export:
            export.timer = asyncio.get_running_loop().call_later(self._idle_seconds, self._expire, export)

    def _expire(self, export: _Export) -> None:
        export.timer = None
        if not export.users and export.stopping is None:
            self._spawn(self._stop(export, wait=True))

    async def _stop(self, export: _Export, *, wait: bool) -> None:
        if export.stopping is None:
            # A task of its own, so that a caller cancelled mid-stop never leaves a daemon behind.
            export.stopping = self._spawn(self._shutdown(export, wait=wait))
        await asyncio.shield(export.stopping)

    async def _shutdown(self, export: _Export, *, wait: bool) -> None:
        try:
            if export.timer is not None:
                export.timer.cancel()
                export.timer = None
            if wait and export.users:
                await export.idle.wait()
            if export.started is not None:
                await asyncio.wait([export.started])
            frozen = export.client is not None and export.client.timed_out
            if export.client is not None:
                await export.client.close()
            await self._terminate(export, kill=frozen)
        finally:
            if self._exports.get(export.drive) is export:
                del self._exports[export.drive]
            export.stopped.set()

    async def _terminate(self, export: _Export, *, kill: bool = False) -> None:
        for process in export.processes:
            if process.returncode is None:
                if kill:
                    process.kill()  # SIGKILL: a stopped or wedged daemon never acts on SIGTERM
                else:
                    process.terminate()  # SIGTERM: the daemon flushes and exits cleanly
        for process in export.processes:
            try:
                await asyncio.wait_for(process.wait(), self._start_timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if export.drains:
            await asyncio.wait(export.drains)

    def _command(self, export: _Export, lane: int, fd: int, secret_fd: int | None) -> list[str]:
        file = f"driver=file,node-name=file,filename={qemu_escape(str(export.path))}"
        if export.driver == "luks":
            # No discard: a hole under LUKS decrypts to noise, so zeros are written encrypted.
            disk = f"driver=luks,node-name=disk,file=file,key-secret={SECRET_ID}"
        elif secret_fd is not None:
            file += ",discard=unmap"
            disk = (
                "driver=qcow2,node-name=disk,file=file,discard=unmap,encrypt.format=luks,"
                f"encrypt.key-secret={SECRET_ID}"
            )
        else:
            file += ",discard=unmap"
            disk = "driver=qcow2,node-name=disk,file=file,discard=unmap"
        if lane:
            # The first lane's daemon holds qemu's image lock, which would refuse the others. A
            # LUKS volume caches no metadata, so daemons writing to it side by side are as safe as
            # one daemon's parallel requests; our own drive locks keep everyone else out.
            file += ",locking=off"
        command = [self._daemon]
        if secret_fd is not None:
            command += ["--object", secret_object(secret_fd)]
        # A clone's qcow2 names its base (storage/bases.py) as backing file, with its format: with
        # no `backing` option QEMU opens that chain itself, read-only and sharing its lock with
        # every other daemon and guest reading the same base; the base's path is absolute.
        command += [
            # The format is always given: guest bytes are never probed for one.
            "--blockdev",
            file,
            "--blockdev",
            disk,
            "--nbd-server",
            f"addr.type=fd,addr.str={fd},max-connections=1",
            "--export",
            f"type=nbd,id=export,node-name=disk,name={EXPORT},writable=on",
        ]
        if self._pdeathsig:
            command[:0] = [self._pdeathsig, "--pdeathsig", "TERM", "--"]
        return command

    async def _start(self, export: _Export) -> None:
        try:
            connections = []
            for lane in range(export.lanes):
                connections.append(await self._spawn_daemon(export, lane))
            streams = [await asyncio.open_unix_connection(sock=connection) for connection in connections]
            try:
                clients = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            NbdClient.connect(reader, writer, EXPORT, self._request_timeout)
                            for reader, writer in streams
                        )
                    ),
                    self._start_timeout,
                )
                export.client = NbdLanes(clients)
            except (FailedError, TimeoutError):
                for _, writer in streams:
                    writer.close()
                await self._terminate(export)
                self._log.error(
                    "qemu-storage-daemon failed for drive %s: %s",
                    export.drive,
                    export.stderr.decode(errors="replace").strip(),
                )
                raise FailedError("the drive's storage could not be opened") from None
        except BaseException:
            await self._terminate(export)
            if self._exports.get(export.drive) is export:
                del self._exports[export.drive]
            export.stopped.set()
            raise

    async def _spawn_daemon(self, export: _Export, lane: int) -> socket.socket:
        """Start one daemon of the drive; our connection to it, not yet negotiated."""
        listener, connection = await asyncio.to_thread(self._sockets, export.drive)
        try:
            secret_fd = secret_pipe(export.secret) if export.secret is not None else None
            try:
                fds = (listener.fileno(),) if secret_fd is None else (listener.fileno(), secret_fd)
                process = await asyncio.create_subprocess_exec(
                    *self._command(export, lane, listener.fileno(), secret_fd),
                    pass_fds=fds,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env=daemon_env(),
                )
            finally:
                listener.close()  # the daemon holds its own copy
                if secret_fd is not None:
                    os.close(secret_fd)
        except OSError:
            connection.close()
            raise FailedError("qemu-storage-daemon could not be started") from None
        export.processes.append(process)
        assert process.stderr is not None
        export.drains.append(self._spawn(self._drain(process.stderr, export.stderr)))
        return connection

    def _sockets(self, drive: str) -> tuple[socket.socket, socket.socket]:
        """A listening socket and our connection to it, queued in its backlog until the daemon
        accepts; the path is gone before the daemon even starts."""
        path = self._dir / f".{drive}.nbd"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        directory = -1
        try:
            name = str(path)
            if len(os.fsencode(name)) > SUN_PATH_MAX:
                directory = os.open(self._dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                name = f"/proc/self/fd/{directory}/{path.name}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a socket left by a crash
            listener.bind(name)
            try:
                listener.listen(1)
                connection.connect(name)
            finally:
                os.unlink(path)
            connection.setblocking(False)
            return listener, connection
        except BaseException:
            listener.close()
            connection.close()
            raise
        finally:
            if directory >= 0:
                os.close(directory)

    async def _drain(self, stream: asyncio.StreamReader, kept: bytearray) -> None:
        """Read the daemon's stderr so it never blocks on a full pipe; keep the tail for the log."""
        while data := await stream.read(STDERR_KEPT):
            kept += data
            del kept[:-STDERR_KEPT]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here; whoever awaited it has already seen it
