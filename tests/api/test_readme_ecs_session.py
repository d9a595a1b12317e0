"""The README's "A first session with the ECS API", run against the real program started by the
README's own command (`scripts/serve.sh`) on the default config, from a directory other than the
checkout: its `$ ` commands read from README.rst and run verbatim by bash, with the README's
example user, secret and token replaced by the real ones and its port by the test's. Every output
line the README shows must appear, a `...` standing for any text; a command whose shown output
says `"completed"` is a poll, run again until it does. Then its ecsapi example, run by the
checkout's Python. The only thing that differs from the defaults is the port (a config file
holding only `listen`)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.api.readme import Shell, section, session_commands
from tests.hypervisor.bootsector_image import write_boot_image
from tests.support import GUEST_DEADLINE, Installation, program_env, request, wait_until

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
TITLE = "A first session with the ECS API"


def ecs_section(readme: str) -> str:
    return section(readme, TITLE, "Configuration")


def python_example(text: str) -> str:
    """The literal block of the section that uses ecsapi, dedented."""
    blocks = text.split("::\n\n")[1:]
    code = next(b for b in blocks if "from ecsapi import" in b)
    lines = []
    for line in code.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_the_readme_parser_finds_the_ecs_session():
    readme = (ROOT / "README.rst").read_text()
    assert readme.index(f"\n{TITLE}\n") < readme.index("\nConfiguration\n=============\n")
    commands = session_commands(ecs_section(readme))
    assert commands[0][0].startswith(".venv/bin/elastic-api user token create ")
    assert commands[0][1][0].startswith("token ")
    assert any("image add" in c and "tiny.img" in c for c, _ in commands)
    assert any(c.endswith("$ECS/servers") and "-d " in c for c, _ in commands)
    assert any("-X DELETE" in c for c, _ in commands)
    assert any(c.endswith("$ECS/login") for c, _ in commands)
    assert any('"password": "a\\u0007b"' in c for c, _ in commands)  # a refusal: a bad password
    assert "Api(token=" in python_example(ecs_section(readme))


@pytest.mark.libvirt
@pytest.mark.slow
@pytest.mark.timeout(6 * GUEST_DEADLINE)
def test_the_ecs_session_on_the_default_config(installation: Installation, system_libvirt: str) -> None:
    home = installation.directory
    assert not home.resolve().is_relative_to(ROOT)
    (home / ".venv").symlink_to(VENV)  # so the README's `.venv/bin/elastic-api` runs verbatim here
    write_boot_image(home / "tiny.img")  # the image the README's operator adds
    installation.serve(command=[str(ROOT / "scripts" / "serve.sh"), "--config", "listen.yaml"], timeout=300)

    readme = (ROOT / "README.rst").read_text()
    shell = Shell(installation, strict=True)
    # The user the section names is alice, from "A first session": made by its own first command.
    alice, shown = session_commands(section(readme, "A first session", "Drive bytes"))[0]
    shell.run(alice, shown)
    user, secret = (shell.real[line.split(" ", 1)[1]] for line in shown)

    ran = {}
    for command, expected in session_commands(ecs_section(readme)):
        poll = any('"completed"' in line for line in expected)
        ran[command] = shell.run(command, expected, until=GUEST_DEADLINE if poll else 0.0, failed='"status": "failed"')
        if any('"status": "Booted"' in line for line in expected):  # the engine's lists show it, tagged
            status, _, body = request(
                f"{installation.url}/servers/info", user, secret, method="GET", headers={"Accept": "application/json"}
            )
            assert status == 200 and [s["tags"] for s in json.loads(body)] == [["ecs"]], body
            status, _, body = request(
                f"{installation.url}/drives/info", user, secret, method="GET", headers={"Accept": "application/json"}
            )
            assert status == 200 and [d["tags"] for d in json.loads(body)] == [["ecs"]], body

    # Beyond the shown lines: the server the session made was booted, then deleted everywhere.
    created = json.loads(next(o for c, o in ran.items() if c.endswith("$ECS/servers") and "-d " in c)[0])
    assert created["server"]["status"] == "Booting" and created["server"]["user"] == user
    listed = next(o for c, o in ran.items() if c.endswith(" $ECS/servers") and "-d " not in c)
    assert json.loads(listed[0])["count"] == 0
    status, _, body = request(f"{installation.url}/servers/list", user, secret, method="GET")
    assert (status, body) == (200, b"")
    login = json.loads(next(o for c, o in ran.items() if c.endswith("$ECS/login"))[0])
    assert login["token"].startswith(f"{user}.") and login["expire"] > 0
    for header in ({"X-APITOKEN": login["token"]}, {"Authorization": f"Bearer {login['token']}"}):
        with urllib.request.urlopen(urllib.request.Request(f"{installation.url}/ecs/v2/account", headers=header)) as r:
            assert json.loads(r.read())["status"] == "ok"

    # The ecsapi example, as the README writes it (its token and port swapped for the real ones).
    code = shell.swap(python_example(ecs_section(readme))).replace("port=8080", f"port={installation.port}")
    (home / ".env").write_text("ECSAPI_VERSION=9\n")  # read, it would fail the client
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=home,
        env={k: v for k, v in program_env().items() if not k.startswith("ECSAPI_")},
        timeout=2 * GUEST_DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["completed Booted"]
    wait_until(
        lambda: request(f"{installation.url}/servers/list", user, secret, method="GET")[2] == b"",
        "the example's server deleted",
        GUEST_DEADLINE,
    )
    assert installation.stop() == 0
