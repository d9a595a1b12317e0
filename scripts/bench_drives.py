#!/usr/bin/env python3
"""Benchmark: drive upload and download over HTTP on loopback against plain local file I/O, and sparseness."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elastic_api.model.units import parse_size  # noqa: E402

MiB = 1 << 20
# Loopback only: the benchmark's server and its throwaway user never face a network.
HOST = "127.0.0.1"


@dataclass
class Image:
    """The test image as a client holds it: independently gzipped chunks, and the digest of its bytes."""

    size: int
    chunk: int
    chunks: list[bytes]
    sha256: str

    @property
    def compressed(self) -> int:
        return sum(len(c) for c in self.chunks)


def image_bytes(size: int, chunk: int, seed: int) -> Iterator[bytes]:
    """A disk-like image, chunk by chunk: regions of random bytes, text and zeros of uneven lengths,
    about a third each (an installed system has all three)."""
    rng = random.Random(seed)
    words = [b"lorem", b"ipsum", b"kernel", b"module", b"/usr/lib", b"config", b"elastic", b"0x1f8b"]
    text = b" ".join(rng.choice(words) for _ in range(200_000)) + b"\n"
    pending = bytearray()
    produced = 0
    while produced < size:
        while len(pending) < chunk:
            kind, n = rng.randrange(3), rng.randrange(64 << 10, 8 * MiB)
            if kind == 0:
                pending += rng.randbytes(n)
            elif kind == 1:
                pending += (text * (n // len(text) + 1))[:n]
            else:
                pending += bytes(n)
        out = bytes(pending[: min(chunk, size - produced)])
        del pending[: len(out)]
        produced += len(out)
        yield out


def build_image(size: int, chunk: int, workers: int) -> Image:
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    with ThreadPoolExecutor(workers) as pool:  # zlib releases the GIL: compress on every core
        batch: list[bytes] = []
        for data in image_bytes(size, chunk, seed=1):
            digest.update(data)
            batch.append(data)
            if len(batch) == 2 * workers:
                chunks.extend(pool.map(gzip_chunk, batch))
                batch = []
        chunks.extend(pool.map(gzip_chunk, batch))
    return Image(size, chunk, chunks, digest.hexdigest())


def gzip_chunk(data: bytes) -> bytes:
    """What the upload tools send: each chunk a gzip member of its own, gzip(1)'s default level."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush()


def baseline_upload(image: Image, path: Path) -> float:
    """Seconds for a plain local process to inflate the same chunks into a file and sync it."""
    begin = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, image.size)
        for index, compressed in enumerate(image.chunks):
            os.pwrite(fd, zlib.decompress(compressed, 16 + zlib.MAX_WBITS), index * image.chunk)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - begin


def baseline_download(path: Path, size: int, chunk: int) -> tuple[float, bytearray]:
    """Seconds for a plain local process to read the drive's pool file into memory in `chunk`
    reads, and what it read (hashed afterwards, outside the time, like the download's)."""
    into = bytearray(size)
    view = memoryview(into)
    begin = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        offset = 0
        while offset < size:
            got = f.readinto(view[offset : offset + chunk])
            if not got:
                raise RuntimeError("pool file shorter than the drive")
            offset += got
    return time.perf_counter() - begin, into


def drop_page_cache() -> bool:
    """Empty the page cache (root only), so both download and baseline read from the disk:
    a drive being downloaded is rarely in memory on a real host. False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        print("cannot drop the page cache (needs root): measuring warm only", flush=True)
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """A real `elastic-api serve` in a subprocess, with its own data dir, config and user."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "var"
        self.port = free_port()
        self.config = workdir / "elastic-api.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "listen": f"{HOST}:{self.port}",
                    "data_dir": str(self.data_dir),
                    "hosts": [{"name": "local", "uri": "test:///default"}],
                }
            )
        )
        venv = ROOT / ".venv" / "bin" / "elastic-api"
        self.program = str(venv if venv.exists() else Path(sys.executable).parent / "elastic-api")
        self.log = workdir / "server.log"
        self.process: asyncio.subprocess.Process | None = None
        self.user = self.secret = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def cli(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            self.program,
            "--config",
            str(self.config),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode:
            raise RuntimeError(f"elastic-api {' '.join(args)} failed: {err.decode().strip()}")
        return out.decode()

    async def start(self, patience: float = 60.0) -> None:
        lines = dict(line.split(" ", 1) for line in (await self.cli("user", "create")).splitlines() if " " in line)
        self.user, self.secret = lines["user"].strip(), lines["secret"].strip()
        log = await asyncio.to_thread(open, self.log, "wb")
        with log:
            self.process = await asyncio.create_subprocess_exec(
                self.program,
                "--config",
                str(self.config),
                "serve",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + patience
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the server exited: see {self.log}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/drives/list"):
                        return  # any answer (401 without auth) means it is serving
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {patience} s: see {self.log}")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def create_drive(session: aiohttp.ClientSession, url: str, size: int, fmt: str, cipher: str = "none") -> str:
    # Plain unless asked: this benchmark compares the pool file with local I/O (see bench_encryption.py).
    body = f"name bench\nsize {size}\nformat {fmt}\nencryption:cipher {cipher}\n"
    async with session.post(f"{url}/drives/create", data=body, headers={"Accept": "application/json"}) as r:
        if r.status != 200:
            raise RuntimeError(f"create: {r.status} {await r.text()}")
        return str((await r.json())["drive"])


async def upload(
    session: aiohttp.ClientSession, url: str, drive: str, chunks: list[bytes], chunk: int, inflight: int
) -> float:
    """Seconds to POST every gzipped chunk at its offset, `inflight` at a time."""
    queue = list(enumerate(chunks))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index, data = queue.pop()
            # A file-like body: aiohttp streams it rather than handing megabytes to the socket at once.
            async with session.post(
                f"{url}/drives/{drive}/write/{index * chunk}",
                data=io.BytesIO(data),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
            ) as r:
                if r.status != 204:
                    raise RuntimeError(f"write at {index * chunk}: {r.status} {await r.text()}")

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return time.perf_counter() - begin


class Reader:
    """A lean HTTP/1.1 reader: one keep-alive socket, `GET .../read/OFFSET/SIZE` with the body
    received straight into the caller's buffer. The benchmark measures the server, so the client
    must cost no more than the local baseline's own read: no parser copies, no hashing in the loop."""

    def __init__(self, port: int, authorization: str) -> None:
        self.sock = socket.create_connection((HOST, port))
        self.authorization = authorization
        self.pending = b""

    def read(self, drive: str, offset: int, view: memoryview) -> None:
        request = (
            f"GET /drives/{drive}/read/{offset}/{len(view)} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Authorization: {self.authorization}\r\nAccept-Encoding: identity\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = self.pending
        while b"\r\n\r\n" not in head:
            more = self.sock.recv(65536)
            if not more:
                raise RuntimeError(f"read at {offset}: the server closed the connection")
            head += more
        head, body = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if lines[0].split()[1] != "200" or int(fields.get("content-length", -1)) != len(view):
            raise RuntimeError(f"read at {offset}: {lines[0]} {fields}")
        got = min(len(body), len(view))
        view[:got] = body[:got]
        self.pending = body[got:]
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if not n:
                raise RuntimeError(f"read at {offset}: the body ended early")
            got += n

    def close(self) -> None:
        self.sock.close()


def download(
    port: int, authorization: str, drive: str, size: int, chunk: int, inflight: int
) -> tuple[float, bytearray]:
    """Seconds to GET the whole drive in `chunk` reads over `inflight` connections (threads; the
    socket calls drop the GIL), received into memory, and what came (hashed afterwards)."""
    into = bytearray(size)
    view = memoryview(into)
    offsets = iter(range(0, size, chunk))
    readers = [Reader(port, authorization) for _ in range(inflight)]

    def worker(reader: Reader) -> None:
        for offset in offsets:  # a shared iterator: each offset goes to one worker (next() holds the GIL)
            reader.read(drive, offset, view[offset : offset + min(chunk, size - offset)])

    try:
        begin = time.perf_counter()
        with ThreadPoolExecutor(inflight) as pool:
            for done in [pool.submit(worker, reader) for reader in readers]:
                done.result()
        return time.perf_counter() - begin, into
    finally:
        for reader in readers:
            reader.close()


class Ceiling:
    """What loopback itself allows: a plain threaded server answering the same reads with a bare
    `200` and os.sendfile of the pool file, no HTTP framework, no auth, no database. Downloading
    from it with the same client shows how much of the gap to a local read is the socket's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.create_server((HOST, 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed by close()
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, open(self.path, "rb") as file, contextlib.suppress(OSError):
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    more = conn.recv(65536)
                    if not more:
                        return
                    buffered += more
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                _, offset, size = head.split(b" ", 2)[1].rsplit(b"/", 2)
                offset_, size_ = int(offset), int(size)
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size_}\r\n\r\n".encode())
                sent = 0
                while sent < size_:
                    sent += os.sendfile(conn.fileno(), file.fileno(), offset_ + sent, size_ - sent)

    def close(self) -> None:
        self.listener.close()


def sha256(data: bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / MiB:8.1f} MiB/s"


async def bench(args: argparse.Namespace) -> int:
    size, chunk = parse_size(args.size), parse_size(args.chunk)
    zeros = parse_size(args.zeros)
    if size <= 0 or chunk <= 0 or size % chunk or zeros % chunk:
        raise SystemExit("--size and --zeros must be positive multiples of --chunk")
    workdir = Path(tempfile.mkdtemp(prefix="elastic-bench-drives-", dir=args.workdir))
    server = Server(workdir)
    try:
        print(f"building a {size / MiB:.0f} MiB image in {chunk / MiB:g} MiB gzipped chunks ...", flush=True)
        image = await asyncio.to_thread(build_image, size, chunk, os.cpu_count() or 2)
        print(f"image: {size / MiB:.0f} MiB, {image.compressed / MiB:.0f} MiB gzipped, {len(image.chunks)} chunks")

        baseline_up = await asyncio.to_thread(baseline_upload, image, workdir / "baseline.raw")
        (workdir / "baseline.raw").unlink()

        await server.start()
        token = base64.b64encode(f"{server.user}:{server.secret}".encode()).decode()
        authorization = f"Basic {token}"
        connector = aiohttp.TCPConnector(limit=args.inflight)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with aiohttp.ClientSession(
            headers={"Authorization": authorization}, connector=connector, timeout=timeout
        ) as session:
            drive = await create_drive(session, server.url, size, args.format)
            up = await upload(session, server.url, drive, image.chunks, chunk, args.inflight)
            pool_file = server.data_dir / "pool" / f"{drive}.{args.format}"
            # Warm: the file is in the page cache for both. Cold: both start from the disk, as a
            # download of a drive nobody touched lately does. Best of `rounds` each, alternating.
            downs: dict[str, list[float]] = {"warm": [], "cold": []}
            locals_: dict[str, list[float]] = {"warm": [], "cold": []}
            ceilings: dict[str, list[float]] = {"warm": [], "cold": []}
            ceiling = Ceiling(pool_file)
            caches = ["warm", "cold"] if drop_page_cache() else ["warm"]
            for cache in caches:
                for _ in range(args.rounds):
                    if cache == "cold":
                        drop_page_cache()
                    seconds, got = await asyncio.to_thread(
                        download, server.port, authorization, drive, size, chunk, args.inflight
                    )
                    downs[cache].append(seconds)
                    if await asyncio.to_thread(sha256, got) != image.sha256:
                        raise RuntimeError("the downloaded drive differs from the uploaded image")
                    del got
                    if args.format != "raw":
                        continue  # a qcow2 file's bytes are not the guest's: no local baseline
                    if cache == "cold":
                        drop_page_cache()
                    seconds, got = await asyncio.to_thread(baseline_download, pool_file, size, chunk)
                    locals_[cache].append(seconds)
                    if await asyncio.to_thread(sha256, got) != image.sha256:
                        raise RuntimeError("the pool file differs from the uploaded image")
                    del got
                    if cache == "cold":
                        drop_page_cache()
                    seconds, got = await asyncio.to_thread(
                        download, ceiling.port, "", drive, size, chunk, args.inflight
                    )
                    ceilings[cache].append(seconds)
                    del got
            ceiling.close()

            empty = await create_drive(session, server.url, zeros, args.format)
            zero_chunk = gzip_chunk(bytes(chunk))
            zero_time = await upload(session, server.url, empty, [zero_chunk] * (zeros // chunk), chunk, args.inflight)
            zero_file = server.data_dir / "pool" / f"{empty}.{args.format}"
            allocated = zero_file.stat().st_blocks * 512

        # The headline: downloads against a bare threaded sendfile server answering the same reads
        # of the same file to the same client, in the same run (issue 17's target: at least 0.8).
        for cache in caches:
            if ceilings[cache]:
                print(
                    f"HEADLINE download / bare sendfile ({cache} page cache, {chunk / MiB:g} MiB reads, "
                    f"{args.inflight} in flight): {min(ceilings[cache]) / min(downs[cache]):.2f}"
                )
        print(
            f"upload   {rate(size, up)} over HTTP ({args.inflight} in flight), "
            f"baseline {rate(size, baseline_up)} (local inflate + write + fdatasync): "
            f"ratio {baseline_up / up:.2f}"
        )
        for cache in caches:
            down = min(downs[cache])
            how = f"{chunk / MiB:g} MiB reads, {args.inflight} in flight, {cache} page cache"
            if locals_[cache]:
                local_down, bare = min(locals_[cache]), min(ceilings[cache])
                print(
                    f"download {rate(size, down)} over HTTP ({how}), baseline {rate(size, local_down)} "
                    f"(local read of the pool file): ratio {local_down / down:.2f}"
                )
                print(
                    f"         loopback ceiling {rate(size, bare)} (bare sendfile server, same client): "
                    f"ceiling / local read {local_down / bare:.2f}, download / ceiling {bare / down:.2f}"
                )
            else:
                print(f"download {rate(size, down)} over HTTP ({how})")
        print(
            f"zeros    {zeros / MiB:.0f} MiB all-zero upload in {zero_time:.2f} s "
            f"({rate(zeros, zero_time).strip()}): the pool file allocates {allocated} bytes (st_blocks*512)"
        )
        print("ratios above 1 mean the server is faster than the plain local process")
        return 0
    finally:
        await server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1G", help="image size (k, M, G suffixes; default 1G)")
    parser.add_argument("--chunk", default="4M", help="upload and read size (default 4M, as the real tools)")
    parser.add_argument("--zeros", default="1G", help="size of the all-zero upload (default 1G)")
    parser.add_argument("--inflight", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--format", choices=("raw", "qcow2"), default="raw", help="drive format (default raw)")
    parser.add_argument("--workdir", default="/var/tmp", help="where the temporary data dir goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--rounds", type=int, default=2, help="download measurements per cache state (default 2)")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
