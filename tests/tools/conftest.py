"""The client tools as subprocesses against a real `elastic-api serve`, with a fault proxy on demand."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, create_user, request, write_config
from tests.tools.proxy import FaultProxy

BIN = Path(sys.executable).parent
MiB = 1 << 20


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str

    def restart_command(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("Restart with: ")]
        assert len(lines) == 1, self.stderr
        return lines[0].removeprefix("Restart with: ")


@dataclass
class Account:
    url: str
    user: str
    secret: str
    data: Path

    def env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        # A proxy from the environment must not sit between the tools and the loopback server.
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        return {**env, "EHURI": (url or self.url) + "/", "EHAUTH": f"{self.user}:{self.secret}", **extra}

    def call(self, path: str, body: bytes | None = None, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return request(self.url + path, self.user, self.secret, body, **kw)

    def info(self, drive: str) -> dict[str, str]:
        status, _, body = self.call(f"/drives/{drive}/info", method="GET")
        assert status == 200, body
        return dict((line.split(" ", 1) + [""])[:2] for line in body.decode().splitlines())

    def create_drive(self, size: int) -> str:
        status, _, body = self.call("/drives/create", f"name t\nsize {size}\n".encode())
        assert status == 200, body
        return self.info_from(body)["drive"]

    @staticmethod
    def info_from(body: bytes) -> dict[str, str]:
        return dict((line.split(" ", 1) + [""])[:2] for line in body.decode().splitlines())

    def read_drive(self, drive: str, size: int) -> bytes:
        out = bytearray()
        for offset in range(0, size, 16 * MiB):
            status, _, body = self.call(f"/drives/{drive}/read/{offset}/{16 * MiB}", method="GET")
            assert status == 200
            out += body
        return bytes(out[:size])


@pytest.fixture(scope="package")
def account(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("tools-server")
    config = write_config(directory)
    user, secret = create_user(config)
    with warnings.catch_warnings():
        # Server.start leaves its log file to the garbage collector; that is not what is tested here.
        warnings.simplefilter("ignore", ResourceWarning)
        server = Server(config).start()
    try:
        yield Account(server.url, user, secret, directory)
    finally:
        server.stop()


@pytest.fixture
async def proxy(account: Account) -> Any:
    fault_proxy = FaultProxy(account.url)
    await fault_proxy.start()
    try:
        yield fault_proxy
    finally:
        await fault_proxy.stop()


async def start_tool(
    name: str, *args: str | Path, env: dict[str, str], stdin: bytes | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN / name),
        *map(str, args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
    )


async def finish(process: asyncio.subprocess.Process, stdin: bytes | None = None, timeout: float = 120) -> Done:
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def tool(name: str, *args: str | Path, env: dict[str, str], stdin: bytes | None = None) -> Done:
    return await finish(await start_tool(name, *args, env=env, stdin=stdin), stdin)


def mixed(size: int, seed: int) -> bytes:
    """Random and text regions with zero regions between them, at sizes no chunk divides."""
    rnd = random.Random(seed)
    parts, total = [], 0
    while total < size:
        kind = rnd.choice("rtzz")
        n = rnd.randint(1, 3 * MiB) + rnd.randint(0, 4095)
        parts.append(
            rnd.randbytes(n)
            if kind == "r"
            else (b"elastic text region\n" * (n // 20 + 1))[:n]
            if kind == "t"
            else bytes(n)
        )
        total += n
    return b"".join(parts)[:size]


def zero_blocks(data: bytes, block: int = 4096) -> int:
    """How many whole, aligned filesystem blocks of `data` are all zeros (the most a hole can cover)."""
    zero = bytes(block)
    return sum(1 for at in range(0, len(data) - block + 1, block) if data[at : at + block] == zero)
