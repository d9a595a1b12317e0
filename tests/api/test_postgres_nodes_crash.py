"""Two real `elastic-api serve` nodes on one PostgreSQL database and one pool, node A SIGKILLed in
the middle of a job: node B takes the job over once A's lease runs out (short, in these configs)
and finishes it. A standard-image imaging job through the ElasticHosts dialect, and an ECS create
with a real guest (its image job and its action) through /ecs/v2; nothing is left in progress.

"In the middle" without hooks: `image add` makes an image's base (its raw bytes under the pool) at
once, after which imaging is a clone; the test removes the base, as for an image added before
bases existed, so the job inflates it again (hundreds of MiB), and A is killed once the base's
temporary file has grown past a few MiB. The job is idempotent: B's run makes the base afresh."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.api.ecs.test_ecsapi import cli_token
from tests.api.ecs.test_ecsapi_servers import IMAGE as BOOT_IMAGE
from tests.api.ecs.test_ecsapi_servers import PLANS, ServerCreateRequest, client, release_all
from tests.api.test_postgres_nodes import node_configs
from tests.hypervisor.bootsector_image import BOOT_MARKER, boot_sector
from tests.postgres import fresh_database_sync
from tests.support import (
    GUEST_DEADLINE,
    Server,
    as_json,
    create_user,
    free_port,
    libvirt_test_host,
    network_exists,
    remove_guests_under,
    remove_network_if_unused,
    request,
    run_cli,
    wait_until,
)

MiB = 1 << 20
JSON = {"Accept": "application/json"}
IMAGE = "b16b16b1-0000-4000-8000-000000000001"
# A lease a killed node loses within seconds (the heartbeat renews it every second while alive).
SHORT_LEASE: dict[str, Any] = {"job_lease_seconds": 4, "job_heartbeat_seconds": 1}


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def big_image(path: Path, size: int) -> Path:
    """A raw disk whose first sector boots (printing BOOT_MARKER) and whose every other byte is
    written (not a hole), so a copy of it moves every byte."""
    with open(path, "wb") as f:
        f.write(boot_sector())
        block = bytes(range(1, 256)) * (MiB // 255 + 1)
        left = size - 512
        while left:
            n = min(left, MiB)
            f.write(block[:n])
            left -= n
    return path


def without_base(shared: Path, image: str) -> Path:
    """Remove the image's base (see the module's words); the path of the temporary file a job
    inflating it again writes."""
    base = shared / "pool" / "bases" / f"{image}.raw"
    base.unlink()
    return base.with_name(f".{base.name}.tmp")


def wait_mid_job(url: str, temporary: Path, holder_suffix: str) -> None:
    """Until the image job runs on the node named so and has inflated 16 MiB of the base."""

    def mid() -> bool:
        found = rows(url, "SELECT status, lease_holder FROM jobs WHERE kind = 'image'")
        if not found:
            return False
        status, holder = found[0]
        assert status in ("queued", "running"), f"the job ended ({status}) before the kill: make the image bigger"
        if status != "running":
            return False
        assert str(holder).endswith("/" + holder_suffix), holder
        try:
            return temporary.stat().st_size >= 16 * MiB
        except FileNotFoundError:
            return False

    wait_until(mid, "the image job to be part-way on its node", GUEST_DEADLINE)


def kill(node: Server) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=30)


def unfinished(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT id, kind, status FROM jobs WHERE status IN ('queued', 'running')")


def test_a_killed_nodes_standard_image_job_is_finished_by_the_other_node(tmp_path):
    size = 1024 * MiB
    raw = big_image(tmp_path / "big.raw", size)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    with fresh_database_sync() as url:
        host = libvirt_test_host(tmp_path / "host.xml", 8192)
        configs = node_configs(tmp_path, url, hosts=[{"name": "test", "uri": f"test://{host}"}], **SHORT_LEASE)
        user, secret = create_user(configs[0])
        added = run_cli(configs[0], "image", "add", "--uuid", IMAGE, "--name", "Big", str(raw))
        assert added.returncode == 0, added.stderr
        temporary = without_base(tmp_path / "shared", IMAGE)
        a = Server(configs[0]).start()
        b = Server(configs[1]).start()
        try:

            def call(node: Server, path: str, body: bytes | None = None) -> tuple[int, bytes]:
                status, _, reply = request(node.url + path, user, secret, body, headers=JSON)
                return status, reply

            status, reply = call(a, "/drives/create", b"name target\nsize 1100M\n")
            assert status == 200, reply
            target = as_json(reply)["drive"]
            # The library keeps images gzipped: imaged with gunzip, as the ECS dialect does.
            assert call(a, f"/drives/{target}/image/{IMAGE}/gunzip")[0] == 204
            wait_mid_job(url, temporary, "a")
            kill(a)

            def done() -> bool:
                return not unfinished(url)

            wait_until(done, "node b to take the job over and finish it", 300)
            ((status_, progress, error),) = rows(url, "SELECT status, progress, error FROM jobs WHERE kind = 'image'")
            assert (status_, progress, error) == ("done", 100, None)
            assert "imaged drive " + target in b.log.read_text()
            status, reply = call(b, f"/drives/{target}/info")
            info = as_json(reply)
            assert "imaging" not in info and "imaging:error" not in info and info["claimed"] == []
            status, reply = call(b, f"/drives/{target}/checksum/0/{size}")
            assert status == 200 and as_json(reply)["sha256"] == digest
            # A, restarted under its name at once (its session's name lock went with it), sees
            # the job done and the drive whole.
            a.start()
            status, reply = call(a, f"/drives/{target}/info")
            assert status == 200 and "imaging" not in as_json(reply)
        finally:
            for node in (a, b):
                if node.process is not None and node.process.poll() is None:
                    assert node.stop() == 0


@pytest.mark.libvirt
@pytest.mark.timeout(6 * GUEST_DEADLINE)
def test_a_killed_nodes_ecs_create_is_finished_by_the_other_node_with_a_real_guest(system_libvirt, tmp_path):
    port = free_port()
    public = f"ecs-n-{port}"  # a public network of this test's own (see test_ecsapi_servers)
    subnet = f"10.{200 + port % 50}.{port % 250}"
    had_public = network_exists(system_libvirt, public)
    raw = big_image(tmp_path / "boot.raw", 768 * MiB)
    with fresh_database_sync() as url:
        configs = node_configs(
            tmp_path,
            url,
            hosts=[{"name": "local", "uri": system_libvirt}],
            default_cipher="aes-xts-plain",
            plans=PLANS,
            public_network=public,
            ip_pool={
                "network": f"{subnet}.0/24",
                "gateway": f"{subnet}.1",
                "nameserver": f"{subnet}.1",
                "range": f"{subnet}.10-{subnet}.254",
            },
            **SHORT_LEASE,
        )
        user, _ = create_user(configs[0])
        added = run_cli(configs[0], "image", "add", "--uuid", BOOT_IMAGE, "--name", "Boot Sector 1", str(raw))
        assert added.returncode == 0, added.stderr
        token = cli_token(configs[0], user)
        temporary = without_base(tmp_path / "shared", BOOT_IMAGE)
        a = Server(configs[0]).start()
        b = Server(configs[1]).start()
        try:
            made, action_id = client(a, token).create_server(
                ServerCreateRequest(plan="ECS1", image="boot-sector-1", location="local"), check_if_can_create=False
            )
            wait_mid_job(url, temporary, "a")
            ((holder,),) = rows(url, "SELECT lease_holder FROM jobs WHERE kind = 'create_server'")
            assert str(holder).endswith("/a"), holder
            kill(a)

            api = client(b, token)
            wait_until(
                lambda: api.fetch_action(action_id).status != "in-progress", "node b to end the create", GUEST_DEADLINE
            )
            assert api.fetch_action(action_id).status == "completed"
            server = api.fetch_server(made.name)
            assert server.status == "Booted" and server.progress == 100
            assert all(action.status != "in-progress" for action in api.fetch_actions()[0])
            assert unfinished(url) == []
            ((engine_server,),) = rows(url, "SELECT server FROM ecs_servers")
            log = tmp_path / "shared" / "logs" / f"{engine_server}.serial.log"
            wait_until(lambda: log.exists() and BOOT_MARKER in log.read_bytes(), "the guest to boot", GUEST_DEADLINE)
            release_all(b, token)
            assert unfinished(url) == []
        finally:
            for node in (a, b):
                if node.process is not None and node.process.poll() is None:
                    node.stop()
            remove_guests_under(system_libvirt, tmp_path)
            if not had_public:
                remove_network_if_unused(system_libvirt, public)
