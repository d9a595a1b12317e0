"""Libcloud's ElasticHosts driver boots a real guest on the default config: Libcloud 3.7.0 (the
project's test extra, the last release with the driver) and Debian 12's own python3-libcloud
(3.4.1, run by /usr/bin/python3), each through tests/api/libcloud_client.py in a subprocess.

The program runs as a new user runs it: built-in defaults (./var in its directory, encrypted
drives, qemu:///system, the default public network), only the port chosen by the test. Its
standard image is the boot sector, added with `elastic-api image add`; create_node (size `small`:
a 160 GB drive, 1700 MB, 2000 MHz, nic:0:dhcp auto) must give a guest that prints its marker on
the serial console.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.hypervisor.bootsector_image import BOOT_MARKER, write_boot_image
from tests.support import Installation, as_json, program_env, request

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

CLIENT = Path(__file__).with_name("libcloud_client.py")
DEBIAN = "980cf63c-f21e-4382-997b-6541d5809629"  # "Debian Linux 5.0", a standard image Libcloud lists
UNADDED = "aee5589a-88c3-43ef-bb0a-9cab6e64192d"  # another image Libcloud lists, never added here
DEBIAN_PYTHON = "/usr/bin/python3"

CLIENTS = {"libcloud-3.7.0": (sys.executable, "3.7.0"), "debian-3.4.1": (DEBIAN_PYTHON, "3.4.1")}


class Libcloud:
    """Libcloud's ElasticHosts driver in another interpreter, one call per process."""

    def __init__(self, python: str, installation: Installation, user: str, secret: str) -> None:
        self.python, self.directory = python, installation.directory
        self.args = {"host": "127.0.0.1", "port": installation.port, "user": user, "secret": secret}

    def answer(self, op: str, timeout: float = 120, **args: Any) -> dict[str, Any]:
        env = {k: v for k, v in program_env().items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        done = subprocess.run(
            [self.python, str(CLIENT), json.dumps({**self.args, **args, "op": op})],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            cwd=self.directory,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def __call__(self, op: str, timeout: float = 120, **args: Any) -> Any:
        answer = self.answer(op, timeout, **args)
        assert "error" not in answer, f"{op}: {answer}"
        return answer["result"]


def domain_exists(uri: str, server: str) -> bool:
    conn = libvirt.open(uri)
    try:
        conn.lookupByName(f"elastic-{server}")
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def has_libcloud(python: str) -> bool:
    return (
        os.path.exists(python)
        and subprocess.run(
            [python, "-c", "import libcloud.compute.drivers.elastichosts"],
            capture_output=True,
            check=False,
            env=program_env(),
        ).returncode
        == 0
    )


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> tuple[str, str]:
    python, version = CLIENTS[request.param]
    if not has_libcloud(python):
        message = f"{python} has no Libcloud (scripts/setup.sh installs python3-libcloud)"
        if os.environ.get("ELASTIC_TEST_REQUIRE_LIBVIRT") == "1":
            pytest.fail(message)  # scripts/test.sh: setup.sh installed it, so it must be there
        pytest.skip(message)
    return python, version


@pytest.mark.timeout(1200)
def test_create_node_boots_a_real_guest_on_the_default_config(installation, client, system_libvirt):
    python, version = client
    added = installation.cli(
        "image",
        "add",
        "--uuid",
        DEBIAN,
        "--name",
        "Debian Linux 5.0",
        str(write_boot_image(installation.directory / "bootsector.img")),
    )
    assert added.returncode == 0, added.stderr
    user, secret = installation.create_user("libcloud")
    installation.serve()
    libcloud = Libcloud(python, installation, user, secret)
    assert libcloud("hello")["version"] == version
    assert DEBIAN in libcloud("list_images") and UNADDED in libcloud("list_images")

    # A wrong secret is Libcloud's own credentials error, not a crash or a 5xx.
    wrong = Libcloud(python, installation, user, "wrong").answer("list_nodes")
    assert wrong["error"] == "InvalidCredsError", wrong

    # An image the installation does not have: the drive Libcloud made first stays the caller's,
    # imaging it answers 404 missing, and no server is made.
    failed = libcloud.answer("create_node", name="no image", size="small", image=UNADDED)
    assert "error" in failed and "missing" in failed["message"], failed
    assert libcloud("list_nodes") == []
    status, _, body = request(
        f"{installation.url}/drives/info", user, secret, method="GET", headers={"Accept": "application/json"}
    )
    assert status == 200
    (leftover,) = as_json(body)
    assert leftover["name"] == "no image" and leftover["size"] == 160 * 1024**3 and "imaging" not in leftover
    assert request(f"{installation.url}/drives/{leftover['drive']}/destroy", user, secret)[0] == 204

    node = libcloud("create_node", timeout=900, name="libcloud boot", size="small", image=DEBIAN, vnc_password="s3cret")
    server, drive = node["id"], node["extra"]["ide:0:0"]
    assert node["name"] == "libcloud boot" and node["state"] == "running", node
    assert node["extra"]["cpu"] == 2000 and node["extra"]["mem"] == 1700
    assert len(node["public_ips"]) == 1  # nic:0:dhcp auto leased from the default pool
    installation.wait_for_serial(server, BOOT_MARKER, user, secret)

    # The 160 GB drive is the default kind (encrypted) and thin: the pool holds what was written.
    status, _, body = request(
        f"{installation.url}/drives/{drive}/info", user, secret, method="GET", headers={"Accept": "application/json"}
    )
    info = as_json(body)
    assert status == 200 and info["size"] == 160 * 1024**3 and info["encryption:cipher"] == "aes-xts-plain"
    assert info["claimed"] == [server]
    (volume,) = (installation.data_dir / "pool").glob(f"{drive}.*")
    assert volume.stat().st_blocks * 512 < 256 * 1024**2, f"{volume} allocates {volume.stat().st_blocks * 512} bytes"
    assert BOOT_MARKER not in volume.read_bytes()[: 1 << 20]  # encrypted at rest

    (listed,) = libcloud("list_nodes")
    assert listed["id"] == server and listed["state"] == "running" and listed["public_ips"] == node["public_ips"]

    assert libcloud("reboot_node", id=server) is True
    installation.wait_for_serial(server, BOOT_MARKER, user, secret, times=2)

    assert libcloud("destroy_node", id=server) is True
    assert libcloud("list_nodes") == []
    assert not domain_exists(system_libvirt, server)
    missing = libcloud.answer("destroy_node", id=server)  # twice: the server is gone
    assert missing.get("result") is not True and "missing" in json.dumps(missing), missing

    assert request(f"{installation.url}/drives/{drive}/destroy", user, secret)[0] == 204
    assert not list((installation.data_dir / "pool").glob(f"{drive}.*"))
    assert installation.stop() == 0
