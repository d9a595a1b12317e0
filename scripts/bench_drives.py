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
        out = bytes(pending[:min(chunk, size - produced)])
        del pending[:len(out)]
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


def baseline_download(path: Path, size: int, chunk: int) -> tuple[float, str]:
    """Seconds to read the drive's own pool file locally in the same chunks, and its digest."""
    digest = hashlib.sha256()
    begin = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        left = size
        while left:
            data = f.read(min(chunk, left))
            if not data:
                raise RuntimeError("pool file shorter than the drive")
            digest.update(data)
            left -= len(data)
    return time.perf_counter() - begin, digest.hexdigest()


def drop_page_cache() -> bool:
    """Empty the page cache (root only), so both download and baseline read from the disk:
    a drive being downloaded is rarely in memory on a real host."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        print("cannot drop the page cache (needs root): measuring warm", flush=True)
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
        self.config.write_text(yaml.safe_dump({
            "listen": f"{HOST}:{self.port}",
            "data_dir": str(self.data_dir),
            "hosts": [{"name": "local", "uri": "test:///default"}],
        }))
        venv = ROOT / ".venv" / "bin" / "elastic-api"
        self.program = str(venv if venv.exists() else Path(sys.executable).parent / "elastic-api")
        self.log = workdir / "server.log"
        self.process: asyncio.subprocess.Process | None = None
        self.user = self.secret = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def cli(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(self.program, "--config", str(self.config), *args,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
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
                self.program, "--config", str(self.config), "serve",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
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


async def upload(session: aiohttp.ClientSession, url: str, drive: str, chunks: list[bytes], chunk: int,
                 inflight: int) -> float:
    """Seconds to POST every gzipped chunk at its offset, `inflight` at a time."""
    queue = list(enumerate(chunks))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index, data = queue.pop()
            # A file-like body: aiohttp streams it rather than handing megabytes to the socket at once.
            async with session.post(f"{url}/drives/{drive}/write/{index * chunk}", data=io.BytesIO(data),
                                    headers={"Content-Encoding": "gzip",
                                             "Content-Type": "application/octet-stream"}) as r:
                if r.status != 204:
                    raise RuntimeError(f"write at {index * chunk}: {r.status} {await r.text()}")

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return time.perf_counter() - begin


async def download(session: aiohttp.ClientSession, url: str, drive: str, size: int, chunk: int,
                   inflight: int) -> tuple[float, str]:
    """Seconds to GET the whole drive in `chunk` reads, `inflight` ahead, and the digest of what came."""
    digest = hashlib.sha256()

    async def read(offset: int) -> bytes:
        async with session.get(f"{url}/drives/{drive}/read/{offset}/{chunk}") as r:
            if r.status != 200:
                raise RuntimeError(f"read at {offset}: {r.status} {await r.text()}")
            return await r.read()

    begin = time.perf_counter()
    offsets = iter(range(0, size, chunk))
    pending: list[asyncio.Task[bytes]] = []
    # Hashing runs in a thread (hashlib drops the GIL), so it overlaps receiving, as the baseline's
    # single loop cannot but a client with two cores can.
    for offset in offsets:
        pending.append(asyncio.ensure_future(read(offset)))
        if len(pending) >= inflight:
            await asyncio.to_thread(digest.update, await pending.pop(0))
    for task in pending:
        await asyncio.to_thread(digest.update, await task)
    return time.perf_counter() - begin, digest.hexdigest()


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
        headers = {"Authorization": f"Basic {token}",
                   # The server gzips reads for clients that ask; the tools take them as they are.
                   "Accept-Encoding": "gzip" if args.gzip_reads else "identity"}
        connector = aiohttp.TCPConnector(limit=args.inflight)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        # Socket reads of a whole chunk at a time: aiohttp's 64 KiB default costs a copy per piece.
        async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout,
                                         read_bufsize=chunk) as session:
            drive = await create_drive(session, server.url, size, args.format)
            up = await upload(session, server.url, drive, image.chunks, chunk, args.inflight)
            cold = args.cold and drop_page_cache()
            down, digest = await download(session, server.url, drive, size, chunk, args.inflight)
            if digest != image.sha256:
                raise RuntimeError("the downloaded drive differs from the uploaded image")
            pool_file = server.data_dir / "pool" / f"{drive}.{args.format}"
            if args.format == "raw":
                if cold:
                    drop_page_cache()
                local_down, local_digest = await asyncio.to_thread(baseline_download, pool_file, size, chunk)
                if local_digest != image.sha256:
                    raise RuntimeError("the pool file differs from the uploaded image")
            else:  # the guest bytes of a qcow2 file are not its bytes: compare with a raw copy of the image
                local_down = 0.0

            empty = await create_drive(session, server.url, zeros, args.format)
            zero_chunk = gzip_chunk(bytes(chunk))
            zero_time = await upload(session, server.url, empty, [zero_chunk] * (zeros // chunk), chunk,
                                     args.inflight)
            zero_file = server.data_dir / "pool" / f"{empty}.{args.format}"
            allocated = zero_file.stat().st_blocks * 512

        print(f"upload   {rate(size, up)} over HTTP ({args.inflight} in flight), "
              f"baseline {rate(size, baseline_up)} (local inflate + write + fdatasync): "
              f"ratio {baseline_up / up:.2f}")
        how = f"{chunk / MiB:g} MiB reads" + (", gzipped" if args.gzip_reads else "") + (
            ", cold page cache" if cold else ", warm page cache")
        if local_down:
            print(f"download {rate(size, down)} over HTTP ({how}), "
                  f"baseline {rate(size, local_down)} (local read of the pool file): ratio {local_down / down:.2f}")
        else:
            print(f"download {rate(size, down)} over HTTP ({how})")
        print(f"zeros    {zeros / MiB:.0f} MiB all-zero upload in {zero_time:.2f} s "
              f"({rate(zeros, zero_time).strip()}): the pool file allocates {allocated} bytes (st_blocks*512)")
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
    parser.add_argument("--gzip-reads", action="store_true", help="ask for gzipped reads (Accept-Encoding)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--cold", action="store_true",
                        help="drop the page cache before the download and its baseline (root)")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
