#!/usr/bin/env python3
"""Benchmark: upload and download of encrypted drives (qcow2-LUKS, what every encrypted drive is)
as ratios to a plain raw drive, with plain qcow2 beside them, all through the same server in the
same run. (Raw LUKS drives from older versions are still served, but no longer created.)"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_drives import MiB, Server, build_image, create_drive, download, rate, sha256, upload

from elastic_api.model.units import parse_size
from elastic_api.storage.exports import daemon_env
from elastic_api.storage.nbd_volume import LUKS_CIPHER
from elastic_api.storage.qemu_img import QEMU_IMG_TRIES

# (label, format, encryption:cipher); the first is the baseline.
KINDS = (("plain raw", "raw", "none"), ("plain qcow2", "qcow2", "none"), ("qcow2-LUKS", "qcow2", "aes-xts-plain"))


def cpu_has_aes() -> bool:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        return any(line.startswith("flags") and " aes" in line for line in f)


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> tuple[float, float, list[int]]:
    """(own CPU seconds, CPU seconds of its reaped children, its parent's pid) from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK, [int(fields[1])]


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the server itself and of its qemu-storage-daemons (live ones, plus
    those it has reaped)."""
    own, reaped, _ = process_cpu(pid)
    daemons = reaped
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                child, _, parent = process_cpu(int(entry))
                if parent == [pid]:
                    daemons += child
    return own, daemons


@dataclass
class Figure:
    """One measurement: seconds, and CPU seconds spent by the server, its daemons and the client."""

    seconds: float
    server: float
    daemons: float
    client: float


async def measured(pid: int, work: Awaitable[float]) -> Figure:
    server0, daemons0 = server_cpu(pid)
    client0 = time.process_time()
    seconds = await work
    client = time.process_time() - client0
    server1, daemons1 = server_cpu(pid)
    return Figure(seconds, server1 - server0, daemons1 - daemons0, client)


async def download_into(
    into: list[bytearray], port: int, authorization: str, drive: str, size: int, chunk: int, inflight: int
) -> float:
    seconds, data = await asyncio.to_thread(download, port, authorization, drive, size, chunk, inflight)
    into.append(data)
    return seconds


def qemu_decryption(workdir: Path, size: int) -> float:
    """CPU seconds qemu's own luks driver takes to decrypt `size` bytes of a LUKS file (qemu-io,
    no sockets, one thread): the floor under any encrypted download through qemu's block layer."""
    path = workdir / "ceiling.luks"
    secret = base64.b64encode(os.urandom(32))

    def qemu(command: list[str], *args: str) -> None:
        """Run a qemu tool with the passphrase as a secret object read from a pipe."""
        read, write = os.pipe()
        os.write(write, secret)
        os.close(write)
        try:
            subprocess.run(
                [*command, "--object", f"secret,id=s,format=raw,file=/proc/self/fd/{read}", *args],
                check=True,
                pass_fds=(read,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=daemon_env(),
            )  # the daemons' malloc settings
        finally:
            os.close(read)

    options = f"key-secret=s,iter-time=10,{LUKS_CIPHER}"
    for _ in range(QEMU_IMG_TRIES):  # qemu-img's PBKDF calibration is refused now and then here
        with contextlib.suppress(subprocess.CalledProcessError):
            qemu(["qemu-img", "create"], "-q", "-f", "luks", "-o", options, str(path), str(size))
            break
    opts = f"driver=luks,key-secret=s,file.filename={path}"
    writes = [arg for start in range(0, size, 4 * MiB) for arg in ("-c", f"write -q -P 0x5a {start} {4 * MiB}")]
    qemu(["qemu-io"], "--image-opts", opts, *writes)
    reads = [arg for start in range(0, size, 4 * MiB) for arg in ("-c", f"read -q {start} {4 * MiB}")]
    before = os.times()
    qemu(["qemu-io"], "--image-opts", opts, *reads)
    after = os.times()
    path.unlink()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


async def bench(args: argparse.Namespace) -> int:
    size, chunk = parse_size(args.size), parse_size(args.chunk)
    if size <= 0 or chunk <= 0 or size % chunk:
        raise SystemExit("--size must be a positive multiple of --chunk")
    workdir = Path(tempfile.mkdtemp(prefix="elastic-bench-encryption-", dir=args.workdir))
    server = Server(workdir)
    results: dict[str, tuple[float, Figure, Figure]] = {}
    try:
        print(
            f"CPU AES instructions (aes in /proc/cpuinfo): {'yes' if cpu_has_aes() else 'no'}; {os.cpu_count()} cores"
        )
        print(f"building a {size / MiB:.0f} MiB image in {chunk / MiB:g} MiB gzipped chunks ...", flush=True)
        image = await asyncio.to_thread(build_image, size, chunk, os.cpu_count() or 2)
        await server.start()
        assert server.process is not None
        pid = server.process.pid
        token = base64.b64encode(f"{server.user}:{server.secret}".encode()).decode()
        authorization = f"Basic {token}"
        headers = {"Authorization": authorization, "Accept-Encoding": "identity"}
        connector = aiohttp.TCPConnector(limit=args.inflight)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=timeout, read_bufsize=chunk
        ) as session:
            for _ in range(args.rounds):
                for label, fmt, cipher in KINDS:
                    begin = time.perf_counter()
                    drive = await create_drive(session, server.url, size, fmt, cipher)
                    created = time.perf_counter() - begin
                    up = await measured(pid, upload(session, server.url, drive, image.chunks, chunk, args.inflight))
                    got: list[bytearray] = []
                    # The lean threaded reader of bench_drives: the figure is the server's, not aiohttp's.
                    down = await measured(
                        pid, download_into(got, server.port, authorization, drive, size, chunk, args.inflight)
                    )
                    if await asyncio.to_thread(sha256, got[0]) != image.sha256:
                        raise RuntimeError(f"{label}: the downloaded drive differs from the uploaded image")
                    async with session.post(f"{server.url}/drives/{drive}/destroy") as r:
                        if r.status != 204:
                            raise RuntimeError(f"destroy: {r.status}")
                    best = results.get(label)
                    # The best of the rounds: these machines are shared, and noise only ever slows.
                    results[label] = (
                        (min(created, best[0]), min(up, best[1], key=seconds), min(down, best[2], key=seconds))
                        if best
                        else (created, up, down)
                    )
        ceiling = await asyncio.to_thread(qemu_decryption, workdir, size)
        _, base_up, base_down = results[KINDS[0][0]]
        for label, _, _ in KINDS:
            created, up, down = results[label]
            print(
                f"{label:11s} create {created:5.2f} s   upload {rate(size, up.seconds)} "
                f"(ratio {base_up.seconds / up.seconds:.2f})   download {rate(size, down.seconds)} "
                f"(ratio {base_down.seconds / down.seconds:.2f})"
            )
        print(
            f"ratios are to the plain raw drive in the same run ({size / MiB:.0f} MiB, "
            f"{chunk / MiB:g} MiB gzipped chunks, {args.inflight} in flight, best of {args.rounds}); "
            "the target is at least 0.5"
        )
        print("\nCPU seconds per GiB downloaded: server / its qemu-storage-daemons / this client")
        gib = size / (1 << 30)
        for label, _, _ in KINDS:
            down = results[label][2]
            print(f"  {label:11s} {down.server / gib:5.2f} / {down.daemons / gib:5.2f} / {down.client / gib:5.2f}")
        print(
            f"  qemu's luks driver alone (qemu-io, 4 MiB reads, no sockets): {ceiling / gib:.2f} per GiB, "
            f"{size / MiB / ceiling:.0f} MiB/s per core"
        )
        return 0
    finally:
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def seconds(figure: Figure) -> float:
    return figure.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="512M", help="image size (k, M, G suffixes; default 512M)")
    parser.add_argument("--chunk", default="4M", help="upload and read size (default 4M, as the real tools)")
    parser.add_argument("--inflight", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best of each is kept (default 2)")
    parser.add_argument("--workdir", default="/var/tmp", help="where the temporary data dir goes")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
