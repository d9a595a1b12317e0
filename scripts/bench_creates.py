#!/usr/bin/env python3
"""Benchmark: drive creates on the default config (encrypted), one at a time and many at once,
as ratios to plain creates through the same server in the same run.

Targets (issue "The first hour on the defaults"): one encrypted create answered in under 0.2 s on
an idle machine; 50 concurrent ones all answered within 10 s. The drives are Libcloud's `small`
size (160 GB): an encrypted drive must be thin, so its size must not matter.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_drives import Server

SIZE = "160G"


async def create(session: aiohttp.ClientSession, url: str, cipher: str) -> float:
    body = f"name bench\nsize {SIZE}\nencryption:cipher {cipher}\n"
    start = time.perf_counter()
    async with session.post(f"{url}/drives/create", data=body) as reply:
        text = await reply.text()
        if reply.status != 200:
            raise RuntimeError(f"create ({cipher}): {reply.status} {text.strip()}")
    return time.perf_counter() - start


async def one_at_a_time(session: aiohttp.ClientSession, url: str, cipher: str, count: int) -> float:
    """Median seconds of `count` creates made one after another."""
    return statistics.median([await create(session, url, cipher) for _ in range(count)])


async def at_once(session: aiohttp.ClientSession, url: str, cipher: str, count: int) -> float:
    """Seconds until the last of `count` concurrent creates is answered."""
    start = time.perf_counter()
    await asyncio.gather(*(create(session, url, cipher) for _ in range(count)))
    return time.perf_counter() - start


async def bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-creates-") as workdir:
        server = Server(Path(workdir))
        await server.start()
        # 200 drives of 160 GB pass the default quota (10 TiB, 200 drives): lift it for this user.
        await server.cli("user", "set-quota", server.user, "drive_bytes=unlimited", "drives=unlimited")
        try:
            token = base64.b64encode(f"{server.user}:{server.secret}".encode()).decode()
            headers = {"Authorization": f"Basic {token}"}
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
                await create(session, server.url, "none")  # warm up: first connection, first row
                plain_one = await one_at_a_time(session, server.url, "none", args.count)
                crypt_one = await one_at_a_time(session, server.url, "aes-xts-plain", args.count)
                plain_many = await at_once(session, server.url, "none", args.concurrent)
                crypt_many = await at_once(session, server.url, "aes-xts-plain", args.concurrent)
            used = sum(p.stat().st_blocks * 512 for p in (server.data_dir / "pool").iterdir())
        finally:
            await server.stop()
    drives = 1 + args.count * 2 + args.concurrent * 2
    print(f"drive creates of {SIZE}, plain raw (baseline) and encrypted (the default: qcow2-LUKS)")
    print(
        f"  one at a time, median of {args.count}: encrypted {crypt_one * 1000:.1f} ms, "
        f"plain {plain_one * 1000:.1f} ms, ratio {crypt_one / plain_one:.2f}  (target: under 200 ms)"
    )
    print(
        f"  {args.concurrent} at once, until the last answer: encrypted {crypt_many:.2f} s, "
        f"plain {plain_many:.2f} s, ratio {crypt_many / plain_many:.2f}  (target: under 10 s)"
    )
    print(f"  pool space for {drives} drives of {SIZE}: {used / 2**20:.1f} MiB")
    ok = crypt_one < 0.2 and crypt_many < 10
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="creates timed one at a time, per kind")
    parser.add_argument("--concurrent", type=int, default=50, help="creates sent at once, per kind")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
