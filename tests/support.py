"""Helpers for tests that run the real `elastic-api` program as a subprocess."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent / "elastic-api"
# Seconds a real guest may take to print its boot marker. Firmware and the boot sector take under
# a second on an idle machine, but a guest throttled to its `cpu` share on a 2-core machine that
# another program keeps busy took over 120 s: a deadline, not a wait, so generous costs nothing.
GUEST_DEADLINE = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, **extra: Any) -> Path:
    config = {
        "listen": f"127.0.0.1:{free_port()}",
        "data_dir": str(directory / "var"),
        "hosts": [{"name": "local", "uri": "test:///default"}],
        # test:///default has no libvirt secrets, so its guests' drives are plain unless asked.
        "default_cipher": "none",
        **extra,
    }
    path = directory / "elastic-api.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def libvirt_test_host(path: Path, memory_mb: int, cpus: int = 4) -> Path:
    """A libvirt test-driver host (`test:///PATH`): a private, in-process fake with this much memory."""
    path.write_text(
        f"<node><cpu><mhz>2000</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>"
        f"<sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>"
        f"<memory>{memory_mb * 1024}</memory></node>")
    return path


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def create_user(config: Path) -> tuple[str, str]:
    result = run_cli(config, "user", "create", "--name", "test")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"user", "secret"}
    return lines["user"], lines["secret"]


class Server:
    """`elastic-api serve` in the background, waited for until it answers."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env or {}
        self.url = "http://" + yaml.safe_load(config.read_text())["listen"]
        self.log = config.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> Server:
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
            self.process = subprocess.Popen([str(BIN), "--config", str(self.config), "serve"],
                                            stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/drives/list", timeout=1)
            except urllib.error.HTTPError:
                return self  # it answered (401 without credentials)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not answer in time")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def request(url: str, user: str, secret: str, body: bytes | None = None, *, method: str = "POST",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Basic {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def as_json(body: bytes) -> Any:
    return json.loads(body)
