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
        f"<memory>{memory_mb * 1024}</memory></node>"
    )
    return path


def program_env() -> dict[str, str]:
    """The environment for the programs under test: this one's, without a config a developer may
    have exported (each test names its config, or means the built-in defaults)."""
    env = {k: v for k, v in os.environ.items() if k != "ELASTIC_API_CONFIG"}
    return {**env, "PYTHONUNBUFFERED": "1"}


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "--config", str(config), *args], capture_output=True, text=True, timeout=60, check=False
    )


def create_user(config: Path) -> tuple[str, str]:
    result = run_cli(config, "user", "create", "--name", "test")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"user", "secret"}
    return lines["user"], lines["secret"]


class Server:
    """`elastic-api serve` in the background, waited for until it answers."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str] | None = None,
        *,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`command` replaces `elastic-api --config CONFIG serve` (e.g. scripts/serve.sh); `cwd` is
        where it runs, which is where a relative data_dir lands."""
        self.config = config
        self.env = env or {}
        self.command = command or [str(BIN), "--config", str(config), "serve"]
        self.cwd = cwd
        self.url = "http://" + yaml.safe_load(config.read_text())["listen"]
        self.log = config.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> Server:
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            env = {**program_env(), **self.env}
            self.process = subprocess.Popen(self.command, stdout=out, stderr=out, env=env, cwd=self.cwd)
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Signal the server and wait for it to exit. `timeout` is past shutdown_grace (60 s) so a
        busy machine's slow drain is not taken for a hang; a server that does not exit by then is
        killed (never left behind for the next test) and the test fails with its log's end."""
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"server did not exit within {timeout} s of signal {sig}; its log ends: {self.log.read_text()[-3000:]}"
            ) from None


def request(
    url: str,
    user: str,
    secret: str,
    body: bytes | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Authorization": f"Basic {token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def as_json(body: bytes) -> Any:
    return json.loads(body)


def wait_until(condition: Any, what: str, timeout: float) -> None:
    """Poll `condition()` until it holds; fail after `timeout` seconds (generous: a TCG guest on a
    loaded two-core machine can take a minute to reach its boot sector)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.1)


class Installation:
    """elastic-api as a new user runs it: the built-in defaults, started in a directory of its own,
    so ./var is DIRECTORY/var and a developer's ./var is never touched. The one thing that differs
    is the port, in a config file holding only `listen`, so a developer's server on
    127.0.0.1:8080 is never in the way."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.data_dir = directory / "var"
        self.config = directory / "listen.yaml"
        self.port = free_port()
        self.config.write_text(f"listen: 127.0.0.1:{self.port}\n")
        self.server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`elastic-api ARGS` without --config, in the directory: the built-in defaults exactly."""
        return subprocess.run(
            [str(BIN), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
            env=program_env(),
        )

    def create_user(self, name: str) -> tuple[str, str]:
        result = self.cli("user", "create", "--name", name)
        assert result.returncode == 0, result.stderr
        lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        assert set(lines) == {"user", "secret"}, result.stdout
        return lines["user"], lines["secret"]

    def serve(self, command: list[str] | None = None, timeout: float = 120) -> Server:
        """`elastic-api --config LISTEN-ONLY serve` (or `command`, given that config) in the directory."""
        self.server = Server(self.config, command=command, cwd=self.directory).start(timeout)
        return self.server

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit status, or None when nothing was running."""
        if self.server is None or self.server.process is None or self.server.process.poll() is not None:
            return None
        return self.server.stop()

    def serial_log(self, server: str) -> Path:
        return self.data_dir / "logs" / f"{server}.serial.log"

    def serial(self, server: str) -> bytes:
        path = self.serial_log(server)
        return path.read_bytes() if path.exists() else b""

    def wait_for_serial(
        self, server: str, marker: bytes, user: str, secret: str, *, times: int = 1, timeout: float = GUEST_DEADLINE
    ) -> None:
        """Wait until the guest has printed `marker` `times` times on its serial console. A guest
        that stops first fails at once, saying what libvirt saw, rather than at the deadline."""
        deadline = time.monotonic() + timeout
        while self.serial(server).count(marker) < times:
            status, _, body = request(
                f"{self.url}/servers/{server}/info", user, secret, method="GET", headers={"Accept": "application/json"}
            )
            state = str(json.loads(body)["status"]) if status == 200 else ""
            if state != "active" and self.serial(server).count(marker) < times:
                qemu_log = Path(f"/var/log/libvirt/qemu/elastic-{server}.log")
                seen = qemu_log.read_text(errors="replace")[-600:] if qemu_log.exists() else "(no libvirt log)"
                raise AssertionError(
                    f"server {server} stopped (HTTP {status}, status {state or '-'}) before "
                    f"printing {marker!r} {times} time(s); serial log {self.serial(server)!r}; "
                    f"libvirt's log ends: {seen}"
                )
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {marker!r} from {server}"
            time.sleep(0.2)


def _quiet_libvirt() -> Any:
    """libvirt, without its default of printing every error (a lookup that finds nothing) to stderr."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def remove_guests_under(uri: str, directory: Path) -> list[str]:
    """Destroy (and undefine) every libvirt domain whose XML names a file under `directory`, and the
    libvirt secrets of their drives: whatever a failed test left running on the real libvirtd.
    Returns the domains' names."""
    libvirt = _quiet_libvirt()

    conn = libvirt.open(uri)
    removed = []
    try:
        for dom in conn.listAllDomains(0):
            try:
                if str(directory.resolve()) not in dom.XMLDesc(0):
                    continue
                name = dom.name()
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except libvirt.libvirtError:
                continue  # gone meanwhile
            removed.append(name)
            for secret in conn.listAllSecrets(0):
                try:
                    if f"<description>{name}" in secret.XMLDesc(0):  # then the installation's words
                        secret.undefine()
                except libvirt.libvirtError:
                    pass
    finally:
        conn.close()
    return removed


def remove_network_if_unused(uri: str, name: str) -> None:
    """Remove a libvirt network no domain uses (one a test's server made on the shared libvirtd)."""
    libvirt = _quiet_libvirt()

    conn = libvirt.open(uri)
    try:
        try:
            network = conn.networkLookupByName(name)
        except libvirt.libvirtError:
            return
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                if f"network='{name}'" in dom.XMLDesc(0):
                    return
            except libvirt.libvirtError:
                continue
        try:
            if network.isActive():
                network.destroy()
            if network.isPersistent():
                network.undefine()
        except libvirt.libvirtError:
            pass
    finally:
        conn.close()


def network_exists(uri: str, name: str) -> bool:
    libvirt = _quiet_libvirt()

    conn = libvirt.open(uri)
    try:
        conn.networkLookupByName(name)
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()
