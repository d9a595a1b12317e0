#!/usr/bin/env python3
"""Benchmark: 50 keep-alive clients mixing small requests and 4 MiB writes against a real
`elastic-api serve` pinned to one core, beside a trivial aiohttp handler on the same core; with
--database, the same mix again against --nodes nodes on one PostgreSQL database (pinned to the
same core, the clients spread over them), printed as ratios of the SQLite run."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Loopback only: the server, its users and the load never face a network.
HOST = "127.0.0.1"
MiB = 1 << 20

# The ceiling: aiohttp answering a fixed body with nothing of ours in the way.
HELLO = """
import sys
from aiohttp import web
async def hello(request):
    return web.Response(text="ok\\n")
app = web.Application()
app.router.add_route("*", "/hello", hello)
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def program() -> str:
    venv = ROOT / ".venv" / "bin" / "elastic-api"
    return str(venv if venv.exists() else Path(sys.executable).parent / "elastic-api")


def pinned(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})


def peak_memory(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields["VmHWM"], fields["VmRSS"]


async def wait_listening(port: int, process: subprocess.Popen[bytes], patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited while starting")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start listening")


# -- a small, fast HTTP/1.1 keep-alive client (aiohttp's client would be the bottleneck) -------------
class Connection:
    def __init__(self, port: int, auth: str) -> None:
        self.port = port
        self.auth = auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {self.auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.writer.write(body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Tally:
    small: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    by_op: dict[str, int] = field(default_factory=dict)
    op_seconds: dict[str, list[float]] = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def client(
    port: int, auth: str, seed: int, deadline: float, write_share: float, payload: bytes, tally: Tally
) -> None:
    rng = random.Random(seed)
    conn = Connection(port, auth)
    drives: list[str] = []

    async def call(op: str, method: str, path: str, body: bytes = b"", ok: tuple[int, ...] = (200, 204)) -> bytes:
        start = time.perf_counter()
        try:
            status, data = await conn.request(method, path, body)
        except (OSError, asyncio.IncompleteReadError) as e:
            tally.errors.append(f"{op}: {e!r}")
            conn.close()
            return b""
        took = time.perf_counter() - start
        (tally.writes if op == "write" else tally.small).append(took)
        tally.by_op[op] = tally.by_op.get(op, 0) + 1
        tally.op_seconds.setdefault(op, []).append(took)
        if status not in ok:
            tally.errors.append(f"{op} {path}: {status} {data[:100]!r}")
        return data

    async def create() -> None:
        data = await call("create", "POST", "/drives/create", f"name load{seed}\nsize 8M\n".encode())
        for line in data.decode().splitlines():
            if line.startswith("drive "):
                drives.append(line.split()[1])

    await create()
    small_ops = ("info", "list", "set", "create", "destroy")
    weights = (35, 30, 15, 10, 10)
    while time.monotonic() < deadline:
        if rng.random() < write_share and drives:
            await call("write", "POST", f"/drives/{rng.choice(drives)}/write/{rng.randrange(2) * 4 * MiB}", payload)
            continue
        op = rng.choices(small_ops, weights)[0]
        if op == "create" and len(drives) >= 6:
            op = "destroy"
        if (op == "destroy" and len(drives) <= 1) or not drives:  # a client whose creates failed makes one
            op = "create"
        if op == "info":
            await call(op, "GET", f"/drives/{rng.choice(drives)}/info")
        elif op == "list":
            await call(op, "GET", "/drives/list")
        elif op == "set":
            await call(op, "POST", f"/drives/{rng.choice(drives)}/set", f"name n{rng.randrange(1000)}\n".encode())
        elif op == "create":
            await create()
        else:
            await call(op, "POST", f"/drives/{drives.pop(rng.randrange(len(drives)))}/destroy")
    conn.close()


async def hello_client(port: int, deadline: float, tally: Tally) -> None:
    conn = Connection(port, "Basic eDp5")
    while time.monotonic() < deadline:
        start = time.perf_counter()
        status, _ = await conn.request("GET", "/hello")
        tally.small.append(time.perf_counter() - start)
        if status != 200:
            tally.errors.append(f"hello: {status}")
    conn.close()


def report(name: str, tally: Tally, seconds: float) -> float:
    small_rps = len(tally.small) / seconds
    print(
        f"{name}: {small_rps:,.0f} small requests/s, p50 {percentile(tally.small, 50) * 1000:.1f} ms,"
        f" p99 {percentile(tally.small, 99) * 1000:.1f} ms; errors {len(tally.errors)}"
    )
    return small_rps


async def hello_load(port: int, process: subprocess.Popen[bytes], clients: int, seconds: float) -> Tally:
    await wait_listening(port, process)
    tally = Tally()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(hello_client(port, deadline, tally) for _ in range(clients)))
    return tally


async def api_load(
    port: int, process: subprocess.Popen[bytes], auths: list[str], args: argparse.Namespace, payload: bytes
) -> tuple[Tally, float]:
    await wait_listening(port, process)
    tally = Tally()
    start = time.monotonic()
    deadline = start + args.duration
    await asyncio.gather(
        *(
            client(port, auths[i % len(auths)], i, deadline, args.write_share, payload, tally)
            for i in range(args.clients)
        )
    )
    return tally, time.monotonic() - start


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes have used (from /proc: utime + stime)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


@dataclass
class Run:
    tally: Tally
    seconds: float
    node_cpu: float  # CPU seconds the API processes used
    db_cpu: float  # CPU seconds PostgreSQL's processes used (0 on SQLite)
    memory: list[tuple[int, int]]  # (VmHWM, VmRSS) KiB per node


def node_config(work: Path, args: argparse.Namespace, name: str, database: str) -> Path:
    (work / name).mkdir(parents=True, exist_ok=True)
    config = work / name / "elastic-api.yaml"
    values = {
        "listen": f"{HOST}:{free_port()}",
        # Every node the same data directory: the pool they share, the master key, the ID.
        "data_dir": str(work / "var"),
        "log_level": args.log_level,
        "hosts": [{"name": "test", "uri": "test:///default"}],
        # Throughput, not the upload limit, is measured: every client may be writing at once.
        "max_uploads": args.clients,
        "max_uploads_per_user": args.clients,
        # Plain drives unless asked: a LUKS create runs qemu-img and storage daemons (on this
        # core too, since children inherit the pinning), which bench_encryption measures.
        "default_cipher": args.cipher,
    }
    if database:
        values.update(database_url=database, node_name=name)
    config.write_text(yaml.safe_dump(values))
    return config


def users(config: Path, n: int) -> list[str]:
    auths = []
    for _ in range(n):
        out = subprocess.run(
            [program(), "--config", str(config), "user", "create"], check=True, capture_output=True, text=True
        ).stdout
        lines = dict(line.split(" ", 1) for line in out.splitlines())
        auths.append("Basic " + base64.b64encode(f"{lines['user']}:{lines['secret']}".encode()).decode())
    return auths


async def nodes_load(
    ports: list[int], servers: list[subprocess.Popen[bytes]], auths: list[str], args: argparse.Namespace, payload: bytes
) -> tuple[Tally, float]:
    for port, server in zip(ports, servers, strict=True):
        await wait_listening(port, server)
    tally = Tally()
    start = time.monotonic()
    deadline = start + args.duration
    await asyncio.gather(
        *(
            client(ports[i % len(ports)], auths[i % len(auths)], i, deadline, args.write_share, payload, tally)
            for i in range(args.clients)
        )
    )
    return tally, time.monotonic() - start


def serve_load(work: Path, args: argparse.Namespace, payload: bytes, nodes: int, database: str) -> Run:
    """`nodes` servers on one data directory (SQLite when `database` is empty), all pinned to the
    server's core, the clients spread over them; what it cost."""
    configs = [node_config(work, args, f"n{n}", database) for n in range(nodes)]
    auths = users(configs[0], args.users)
    servers = []
    ports = [int(yaml.safe_load(c.read_text())["listen"].rsplit(":", 1)[1]) for c in configs]
    for n, config in enumerate(configs):
        command = [program(), "--config", str(config), "serve"]
        if args.profile and n == 0:
            command = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "elastic_api", *command[1:]]
        with open(config.parent / "server.log", "wb") as log:
            servers.append(subprocess.Popen(command, stdout=log, stderr=log, preexec_fn=pinned(args.server_cpu)))
        asyncio.run(wait_listening(ports[n], servers[-1]))  # one at a time: the first makes the key
    db_pids = postgres_pids() if database else []
    try:
        node_before, db_before = cpu_seconds([s.pid for s in servers]), cpu_seconds(db_pids)
        tally, seconds = asyncio.run(nodes_load(ports, servers, auths, args, payload))
        node_cpu = cpu_seconds([s.pid for s in servers]) - node_before
        db_cpu = cpu_seconds(db_pids) - db_before
        memory = [peak_memory(s.pid) for s in servers]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait()
    return Run(tally, seconds, node_cpu, db_cpu, memory)


def describe(name: str, run_: Run, args: argparse.Namespace) -> float:
    tally, seconds = run_.tally, run_.seconds
    total = len(tally.small) + len(tally.writes)
    print(f"{name}, {args.clients} clients over {args.users} users, {seconds:.0f} s, servers on CPU {args.server_cpu}:")
    print(f"  all requests: {total / seconds:,.0f}/s ({total} in {seconds:.1f} s); by command {tally.by_op}")
    small_rps = report("  small requests", tally, seconds)
    print(
        "  p50/p99 ms by command: "
        + ", ".join(
            f"{op} {percentile(took, 50) * 1000:.1f}/{percentile(took, 99) * 1000:.1f}"
            for op, took in sorted(tally.op_seconds.items())
        )
    )
    print(
        f"  {args.write_size // MiB} MiB writes: {len(tally.writes) / seconds:.1f}/s"
        f" ({len(tally.writes) * args.write_size / seconds / MiB:.0f} MiB/s),"
        f" p50 {percentile(tally.writes, 50) * 1000:.0f} ms, p99 {percentile(tally.writes, 99) * 1000:.0f} ms"
    )
    print(f"  errors: {len(tally.errors)}" + (f" (first: {tally.errors[0]})" if tally.errors else ""))
    per_k = 1000 / max(total, 1)
    print(
        f"  CPU per 1,000 requests: API {run_.node_cpu * per_k:.2f} s"
        + (f", PostgreSQL {run_.db_cpu * per_k:.2f} s (its whole cluster)" if run_.db_cpu else "")
    )
    for n, (hwm, rss) in enumerate(run_.memory):
        print(f"  node {n} memory: peak {hwm / 1024:.0f} MiB (VmHWM), {rss / 1024:.0f} MiB at the end")
    return small_rps


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new database on the cluster `url` reaches (dropped after): the run never touches data."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"bench_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.client_cpu})
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    payload = random.Random(7).randbytes(args.write_size // 2) * 2  # half repeats: realistic, not zeros

    # The ceiling, on the server's core.
    port = free_port()
    hello = subprocess.Popen([sys.executable, "-c", HELLO, HOST, str(port)], preexec_fn=pinned(args.server_cpu))
    try:
        baseline = asyncio.run(hello_load(port, hello, args.clients, args.baseline))
    finally:
        hello.terminate()
        hello.wait()
    hello_rps = report("baseline (aiohttp hello handler)", baseline, args.baseline)

    one = serve_load(work / "sqlite", args, payload, 1, "")
    small_rps = describe("elastic-api, one node on SQLite", one, args)
    print(f"  small requests/s as a ratio of the hello baseline on the same core: {small_rps / hello_rps:.2f}")
    p99 = percentile(one.tally.small, 99) * 1000
    met = small_rps >= 2000 and p99 < 50 and not one.tally.errors
    print(f"  target (>= 2,000 small/s, p99 < 50 ms, no errors): {'met' if met else 'MISSED'}")
    print(f"  server logs: {work / 'sqlite'}" + (f"; profile: {args.profile}" if args.profile else ""))
    if not args.database:
        return 0 if not one.tally.errors else 1

    with fresh_database(args.database) as url:
        several = serve_load(work / "postgres", args, payload, args.nodes, url)
    several_rps = describe(f"elastic-api, {args.nodes} nodes on PostgreSQL", several, args)
    print(f"  server logs: {work / 'postgres'}")
    p99_several = percentile(several.tally.small, 99) * 1000
    total_one = len(one.tally.small) + len(one.tally.writes)
    total_several = len(several.tally.small) + len(several.tally.writes)
    print(f"{args.nodes} nodes on PostgreSQL as a ratio of one node on SQLite:")
    print(
        f"  small requests/s {several_rps / small_rps:.2f}, all requests/s"
        f" {total_several / several.seconds / (total_one / one.seconds):.2f},"
        f" small p99 {p99_several / p99:.2f} ({p99:.1f} -> {p99_several:.1f} ms),"
        f" errors {len(one.tally.errors)} -> {len(several.tally.errors)}"
    )
    return 0 if not one.tally.errors and not several.tally.errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--baseline", type=float, default=10, help="seconds of the hello baseline (default 10)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive clients (default 50)")
    parser.add_argument("--users", type=int, default=10, help="users the clients are spread over (default 10)")
    parser.add_argument(
        "--write-share", type=float, default=0.01, help="fraction of requests that are writes (default 0.01)"
    )
    parser.add_argument("--write-size", type=int, default=4 * MiB, help="bytes per write (default 4 MiB)")
    parser.add_argument("--server-cpu", type=int, default=0, help="the core the server runs on")
    parser.add_argument("--client-cpu", type=int, default=1, help="the core the load runs on")
    parser.add_argument(
        "--cipher", default="none", help="the server's default_cipher for created drives (default none)"
    )
    parser.add_argument("--log-level", default="INFO", help="the server's log level (INFO logs every request)")
    parser.add_argument("--profile", help="run the (first) server under cProfile and write its stats here")
    parser.add_argument(
        "--database",
        default="",
        help="a PostgreSQL URL: after the SQLite run, run --nodes nodes on a fresh database of its cluster",
    )
    parser.add_argument("--nodes", type=int, default=2, help="API nodes on PostgreSQL (default 2)")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
