"""The README's path for a new user, run against the real program started by the README's own
command (`scripts/serve.sh`) on the default config, from a directory other than the checkout:

- "A first session": its `$` commands read from README.rst and run by bash, with curl, the
  README's example UUIDs and secret replaced by the real ones and its port by the test's; the
  output lines the README shows must appear (key order is free; a line with `...` is elided);
- the ElasticHosts tools as the seed's two-command example uses them: `elastichosts-upload` a
  bootable image, `elastichosts -c servers create` with the seed's keys, and the guest boots.

The only thing that differs from the defaults is the port, in a config file holding only
`listen` (`scripts/serve.sh --config listen.yaml`), so a developer's server on 8080 never
clashes; ./var is the test directory's, never the checkout's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from tests.api.readme import Shell, section, session_commands
from tests.hypervisor.bootsector_image import BOOT_MARKER, write_boot_image
from tests.support import Installation, program_env, request, wait_until

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def first_session(readme: str) -> list[tuple[str, list[str]]]:
    """The `$ ` commands of the README's "A first session" (up to "Drive bytes")."""
    return session_commands(section(readme, "A first session", "Drive bytes"))


def test_the_readme_parser_finds_the_first_session():
    commands = first_session((ROOT / "README.rst").read_text())
    assert commands[0] == (
        ".venv/bin/elastic-api user create --name alice",
        ["user 6f0c2b1e-8a9e-4c1b-9d55-2f0a3c6b7e41", "secret Zm9vYmFyYmF6cXV4..."],
    )
    assert commands[1][0].startswith("AUTH=") and not commands[1][1]
    assert any("\n" in command and "/set" in command for command, _ in commands)  # a continued line
    assert "unknown key: colour" in commands[-1][1]


def tool(
    installation: Installation, user: str, secret: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **program_env(),
        "EHURI": f"{installation.url}/",
        "EHAUTH": f"{user}:{secret}",
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        list(args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=installation.directory,
        env=env,
    )


def props(text: str) -> dict[str, str]:
    return dict((line.split(" ", 1) + [""])[:2] for line in text.splitlines() if line)


def domain_exists(uri: str, server: str) -> bool:
    conn = libvirt.open(uri)
    try:
        conn.lookupByName(f"elastic-{server}")
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


@pytest.mark.libvirt
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_first_session_and_the_seed_example_on_the_default_config(installation, system_libvirt):
    home = installation.directory
    assert not home.resolve().is_relative_to(ROOT)
    (home / ".venv").symlink_to(VENV)  # so the README's `.venv/bin/elastic-api` runs verbatim here
    server = installation.serve(command=[str(ROOT / "scripts" / "serve.sh"), "--config", "listen.yaml"], timeout=300)
    # The README's own command, started elsewhere, keeps its data in ./var of where it started.
    wait_until(lambda: f"data in {(home / 'var').resolve()}" in server.log.read_text(), "the start-up line", 30)
    assert (home / "var" / "elastic.db").exists()

    shell = Shell(installation)
    commands = first_session((ROOT / "README.rst").read_text())
    outputs = [shell.run(command, expected) for command, expected in commands]
    ran = dict(zip((c for c, _ in commands), outputs, strict=True))

    user_create = next(o for c, o in ran.items() if "user create" in c)
    assert [line.split(" ")[0] for line in user_create] == ["user", "secret"]  # and nothing else
    user, secret = (line.split(" ", 1)[1] for line in user_create)
    created = props("\n".join(next(o for c, o in ran.items() if "/drives/create" in c and "colour" not in c)))
    drive = created["drive"]
    assert created["size"] == str(10 * 1024**3) and created["encryption:cipher"] == "aes-xts-plain"
    assert next(o for c, o in ran.items() if c.endswith("/drives/list")) == [drive]
    (info,) = json.loads("\n".join(next(o for c, o in ran.items() if "application/json' http" in c)))
    assert (info["drive"], info["name"], info["size"]) == (drive, "boot", 10 * 1024**3)
    assert props("\n".join(next(o for c, o in ran.items() if c.rstrip().endswith("/set"))))["tags"] == "os linux"
    assert next(o for c, o in ran.items() if "marker=" in c) == []  # the page after the last drive
    assert next(o for c, o in ran.items() if c.endswith("/destroy")) == []
    assert request(f"{installation.url}/drives/list", user, secret, method="GET")[2] == b""  # destroyed

    # The seed's two commands: upload a bootable image, then boot it.
    image = write_boot_image(home / "disk.img")
    assert tool(installation, user, secret, "elastichosts-upload", "-n", "boot", "missing.img").returncode != 0
    uploaded = tool(installation, user, secret, "elastichosts-upload", "-n", "boot", str(image))
    assert uploaded.returncode == 0, uploaded.stderr
    (boot,) = re.findall(r"Created drive (\S+) of size 1048576", uploaded.stdout)
    seed = (
        f"ide:0:0 {boot}\nboot ide:0:0\nnic:0:model virtio\nnic:0:dhcp auto\nsmp auto\nvnc auto\n"
        "vnc:password XXXXXXXX\nmem 256\ncpu 1000\nname seed example\n"
    )
    created_server = tool(installation, user, secret, "elastichosts", "-c", "servers", "create", stdin=seed)
    assert created_server.returncode == 0, created_server.stderr
    guest = props(created_server.stdout)
    assert guest["status"] == "active" and guest["name"] == "seed example" and guest["ide:0:0"] == boot
    assert guest["nic:0:dhcp:ip"] and guest["vnc:ip"] == "127.0.0.1"
    installation.wait_for_serial(guest["server"], BOOT_MARKER, user, secret)

    # The same exclusive drive in a second server, and a drive that does not exist: clean refusals.
    busy = tool(installation, user, secret, "elastichosts", "-c", "servers", "create", stdin=seed)
    assert busy.returncode != 0 and busy.stdout == "" and "busy" in busy.stderr.lower(), busy.stderr
    nowhere = seed.replace(boot, "00000000-0000-4000-8000-000000000000")
    missing = tool(installation, user, secret, "elastichosts", "-c", "servers", "create", stdin=nowhere)
    assert missing.returncode != 0 and missing.stdout == "", missing.stderr
    wrong = tool(installation, user, "wrong", "elastichosts", "servers", "list")
    assert wrong.returncode != 0 and wrong.stdout == ""
    listed = tool(installation, user, secret, "elastichosts", "servers", "list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [guest["server"]]

    assert tool(installation, user, secret, "elastichosts", "servers", guest["server"], "destroy").returncode == 0
    assert not domain_exists(system_libvirt, guest["server"])
    assert tool(installation, user, secret, "elastichosts", "drives", boot, "destroy").returncode == 0
    assert tool(installation, user, secret, "elastichosts", "drives", "list").stdout == ""
    assert installation.stop() == 0
