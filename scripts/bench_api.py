#!/usr/bin/env python3
"""Benchmark: small metadata reads through the real program against a bare aiohttp handler.

1. Authenticated `GET /drives/D/info` under wrk (32 connections by default) against a bare aiohttp
   server answering every request with the same body (no auth, no store), in the same run:
   issue 17 asks for a ratio of at least 0.5.
2. Paging: a user with 10,000 drives (rows put in the database before the server starts), one
   connection: `GET /drives/list?limit=100` (the first page and one after a marker half-way)
   against one drive's info; issue 17 asks for the page within 2x of the info.

Needs wrk (Debian: `apt-get install wrk`; scripts/setup.sh installs it).

    .venv/bin/python scripts/bench_api.py [--connections 32] [--seconds 5] [--drives 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_drives import HOST, Server, free_port  # noqa: E402

BARE = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def handler(request):
    return web.Response(body=body, content_type="text/plain")
app = web.Application()
app.router.add_get("/{tail:.*}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def wrk(url: str, authorization: str | None, connections: int, seconds: int, threads: int) -> tuple[float, float]:
    """Requests per second and mean latency (ms) wrk measured."""
    command = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if authorization:
        command += ["-H", f"Authorization: {authorization}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    if not rate or not latency:
        raise RuntimeError(f"wrk said: {out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[latency.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests: {out}")
    return float(rate.group(1)), float(latency.group(1)) * scale


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(
    url: str, authorization: str | None, connections: int, seconds: int, threads: int, pid: int
) -> tuple[float, float]:
    """Requests per second, and the server's CPU microseconds per request (utime + stime over
    the run): the figure a loaded machine moves least."""
    before = cpu_seconds(pid)
    rate = wrk(url, authorization, connections, seconds, threads)[0]
    used = cpu_seconds(pid) - before
    return rate, used / (rate * seconds) * 1e6


def get(url: str, authorization: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request) as response:
        return bytes(response.read())


def post(url: str, authorization: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Authorization": authorization})
    with urllib.request.urlopen(request) as response:
        return bytes(response.read())


def start_bare(port: int, path: Path, body: bytes) -> subprocess.Popen[bytes]:
    """The bare aiohttp server in a subprocess, once it answers with the body."""
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(port), str(path)])
    deadline = time.monotonic() + 30
    while True:
        try:
            if urllib.request.urlopen(f"http://{HOST}:{port}/x").read() == body:
                return bare
        except OSError:
            if time.monotonic() > deadline:
                bare.terminate()
                raise
            time.sleep(0.05)


def add_drives(db: Path, owner: str, count: int) -> list[str]:
    """Rows for `count` plain drives of owner, as the store writes them (no volume files: listing
    and info never touch them)."""
    now = time.time_ns()
    rows = [
        (
            str(uuid.uuid4()),
            owner,
            f"drive {i}",
            1 << 20,
            "raw",
            "exclusive",
            "none",
            "disk",
            json.dumps({"tags": [], "avoid": [], "user": {}}),
            now + i,
        )
        for i in range(count)
    ]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO drives (id, owner, name, size, format, claim_type, encryption, tier, keys,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return [row[0] for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--drives", type=int, default=10_000, help="drives of the paging user")
    parser.add_argument("--rounds", type=int, default=3, help="paging rounds (the best of each is kept)")
    parser.add_argument("--workdir", default="/var/tmp")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    return asyncio.run(run(args))


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="elastic-bench-api-", dir=args.workdir))
    server = Server(workdir)
    bare = None
    try:
        # The paging user and its drives, before the server starts (the CLI made the schema).
        lines = dict(line.split(" ", 1) for line in (await server.cli("user", "create")).splitlines())
        pager, pager_secret = lines["user"].strip(), lines["secret"].strip()
        drives = add_drives(server.data_dir / "elastic.db", pager, args.drives)
        await server.start()
        url = f"http://{HOST}:{server.port}"
        auth = "Basic " + base64.b64encode(f"{server.user}:{server.secret}".encode()).decode()
        drive = dict(
            line.split(" ", 1)
            for line in post(f"{url}/drives/create", auth, b"name bench\nsize 1M\n").decode().splitlines()
        )["drive"]
        body = get(f"{url}/drives/{drive}/info", auth)
        (workdir / "body").write_bytes(body)
        port = free_port()
        bare = await asyncio.to_thread(start_bare, port, workdir / "body", body)

        # Alternating, best of two each: both under the same conditions.
        ours, theirs = [], []
        assert server.process is not None
        for _ in range(2):
            info = f"{url}/drives/{drive}/info"
            ours.append(wrk_cpu(info, auth, args.connections, args.seconds, args.threads, server.process.pid))
            bare_url = f"http://{HOST}:{port}/x"
            theirs.append(wrk_cpu(bare_url, None, args.connections, args.seconds, args.threads, bare.pid))
        best, best_bare = max(ours), max(theirs)
        print(
            f"GET /drives/D/info, {args.connections} connections: {best[0]:,.0f} req/s; bare aiohttp "
            f"handler, same body: {best_bare[0]:,.0f} req/s; ratio {best[0] / best_bare[0]:.2f}"
        )
        print(
            "  server CPU per request: ours "
            + " ".join(f"{c:.0f}" for _, c in ours)
            + " us, bare "
            + " ".join(f"{c:.0f}" for _, c in theirs)
            + " us"
        )

        pauth = "Basic " + base64.b64encode(f"{pager}:{pager_secret}".encode()).decode()
        marker = drives[len(drives) // 2]
        paths = [
            ("info", f"/drives/{drives[7]}/info"),
            ("page", "/drives/list?limit=100"),
            ("page after marker", f"/drives/list?limit=100&marker={marker}"),
            ("info page", "/drives/info?limit=100"),
            ("whole list", "/drives/list"),
        ]
        # Alternating rounds, the best of each: a shared machine's load lands on all alike.
        latencies: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, path in paths:
                ms = wrk(f"{url}{path}", pauth, 1, max(1, args.seconds // 2), 1)[1]
                latencies[name] = min(ms, latencies.get(name, ms))
        print(f"paging, {args.drives:,} drives of one user, one connection (mean latency, best of {args.rounds}):")
        for name, ms in latencies.items():
            print(f"  {name:<18} {ms:7.3f} ms   {ms / latencies['info']:5.2f}x one drive's info")
        return 0
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait()
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
