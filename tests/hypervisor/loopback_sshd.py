"""An sshd of a test's own on loopback, so that libvirt's `qemu+ssh` transport reaches the local
libvirtd as it reaches a remote host: the client runs ssh, which runs `virt-ssh-helper` (or nc)
on the "remote" side, which connects to libvirtd's socket. Everything is the test's: the config,
the host and client keys (made with ssh-keygen), the known_hosts file, the pid file and the port;
the system's sshd config is never read and no system sshd is started.

`stop()` kills the daemon and every per-connection child (they leave its session, so a signal
to its process group would miss them), as a host that goes away; `start()` brings it back on the
same port with the same host key."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# sshd insists on its privilege separation directory; Debian's init script makes it at boot.
PRIVSEP_DIR = Path("/run/sshd")


def available() -> bool:
    return os.path.exists(SSHD) and os.geteuid() == 0


def _children(pid: int) -> list[int]:
    """Every live descendant of pid (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class LoopbackSshd:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.host_key = directory / "ssh_host_ed25519_key"
        self.client_key = directory / "id_ed25519"
        self.known_hosts = directory / "known_hosts"
        self.config = directory / "sshd_config"
        self.log = directory / "sshd.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        for key in (self.host_key, self.client_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "elastic-api test", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        (directory / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        host_public = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile {directory}/sshd.pid\n"
            f"AuthorizedKeysFile {directory}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "X11Forwarding no\nAllowTcpForwarding no\nPrintMotd no\n"
        )
        # libvirt runs the `command` it is given with ssh's usual arguments; this one adds the
        # test's known_hosts (libvirt's own `known_hosts` parameter is for its libssh transports),
        # checked strictly: the host key was written above, never learnt on first use.
        self.ssh = directory / "ssh"
        self.ssh.write_text(
            f"#!/bin/sh\nexec ssh -o UserKnownHostsFile={self.known_hosts} "
            f'-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes "$@"\n'
        )
        self.ssh.chmod(0o755)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The libvirt URI of the local libvirtd through this sshd."""
        return f"qemu+ssh://root@127.0.0.1:{self.port}/system?keyfile={self.client_key}&no_tty=1&command={self.ssh}"

    def start(self) -> None:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            # -D: in the foreground (ours to stop); -e: its log to stderr, which goes to the file.
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {self.log.read_text()[-1000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        for pid in [*_children(self.process.pid), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        self.process = None
