"""/servers/SERVER/metrics (an ElasticHosts extension) against the real program and a real guest
on qemu:///system: the sampler's points, text and JSON, 404 for another user's server, empty for
a stopped one, and the samples gone with the server."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from tests.api.test_real_boot import boot_drive, serial, until
from tests.conftest import Api, make_app
from tests.hypervisor.bootsector_image import BOOT_MARKER, boot_sector
from tests.support import GUEST_DEADLINE, Installation, request, wait_until

pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(4 * GUEST_DEADLINE)]


@pytest.fixture
async def apis(system_libvirt, tmp_path, serve):
    # The default config but for the interval: two samples must come within the test.
    config = Config(data_dir=tmp_path / "var", hosts=(HostConfig("local", "qemu:///system"),), metrics_interval=1)
    client = await serve(make_app(config))
    users = client.app[SERVICES].users
    alice, bob = Api(client, *await users.create()), Api(client, *await users.create())
    yield alice, bob
    for server in (await alice.get("/servers/list")).text.split()[::3]:
        await alice.call(f"/servers/{server}/destroy")


def check_line(line: str) -> None:
    time_, cpu, *rates = line.split()
    assert abs(int(time_) - time.time()) < GUEST_DEADLINE * 4
    assert 0 <= float(cpu) <= 100 and len(rates) == 4
    for value in (cpu, *rates):
        assert float(value) >= 0 and len(value.split(".")[1]) == 2


async def test_a_running_guest_has_points_another_user_none_and_a_stopped_server_an_empty_series(apis):
    alice, bob = apis
    drive = await boot_drive(alice, "raw")
    server = (
        await alice.call(
            "/servers/create",
            {
                "name": "metered",
                "cpu": "1000",
                "smp": "1",
                "mem": "64",
                "ide:0:0": drive,
                "boot": "ide:0:0",
            },
            as_json=True,
        )
    ).json["server"]
    stopped = (
        await alice.call("/servers/create/stopped", {"name": "idle", "cpu": "500", "mem": "64"}, as_json=True)
    ).json["server"]

    deadline = time.monotonic() + GUEST_DEADLINE
    while True:  # two samples make the first point; a loaded machine may take a while
        reply = await alice.get(f"/servers/{server}/metrics")
        assert reply.status == 200, reply.text
        if len(reply.text.splitlines()) >= 2:
            break
        assert time.monotonic() < deadline, "no metrics came"
        await asyncio.sleep(0.2)
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["X-Elastic-Output"] == "list"
    lines = reply.text.splitlines()
    for line in lines:
        check_line(line)
    times = [int(line.split()[0]) for line in lines]
    assert times == sorted(times)

    reply = await alice.call(f"/servers/{server}/metrics", as_json=True)  # POST, as real clients read
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    points = reply.json
    assert len(points) >= 2 and all(list(point) == ["time", "cpu", "read", "write", "rx", "tx"] for point in points)
    assert all(isinstance(point["time"], int) and isinstance(point["cpu"], str) for point in points)

    unknown = "00000000-0000-4000-8000-000000000000"
    for who, path in (
        (bob, f"/servers/{server}/metrics"),
        (alice, f"/servers/{unknown}/metrics"),
        (alice, "/servers/nonsense/metrics"),
    ):
        reply = await who.get(path)
        assert reply.status == 404 and reply.headers["X-Elastic-Error"] == "missing"
    # Another user's server is answered exactly as one that does not exist.
    assert (await bob.get(f"/servers/{server}/metrics")).text == (await bob.get(f"/servers/{server}/info")).text

    reply = await alice.get(f"/servers/{stopped}/metrics")
    assert reply.status == 200 and reply.text == ""
    assert (await alice.get(f"/servers/{stopped}/metrics", as_json=True)).json == []
    assert (await alice.call(f"/servers/{server}/metrics", method="PUT")).status == 405

    # Read from the real host's bulk statistics: the guest's one vCPU, its CPU time growing, and
    # once it has booted, the boot sector it read from its drive.
    store = alice.client.app[SERVICES].metrics.store
    await until(lambda: asyncio.sleep(0, BOOT_MARKER in serial(alice, server)), "the boot marker")
    booted = time.time()

    async def sampled_after_boot() -> bool:
        return any(s.at > booted for s in await store.server_samples(alice.user, server, 0))

    await until(sampled_after_boot, "a sample after the boot")
    samples = await store.server_samples(alice.user, server, 0)
    assert all(s.vcpus == 1 for s in samples) and samples[-1].cpu_ns > samples[0].cpu_ns > 0
    assert samples[-1].read_bytes >= 512, samples[-1]
    assert (await alice.call(f"/servers/{server}/destroy")).status == 204
    # Its samples went with it: nothing is left to prune (the other server never ran).
    assert await store.prune_samples(time.time() + 3600) == 0


def test_the_real_program_serves_a_real_guests_metrics(installation: Installation) -> None:
    """`elastic-api serve` itself, on the built-in defaults but for the interval."""
    with installation.config.open("a") as config:
        config.write("metrics_interval: 1\n")
    installation.serve()
    user, secret = installation.create_user("metered")
    url = installation.url

    def call(path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return request(url + path, user, secret, body, headers=headers)

    status, _, body = call("/drives/create", b"name boot\nsize 1M\n", Accept="application/json")
    assert status == 200, body
    drive = json.loads(body)["drive"]
    status, _, body = call(f"/drives/{drive}/write/0", gzip.compress(boot_sector()), **{"Content-Encoding": "gzip"})
    assert status == 204, body
    status, _, body = call(
        "/servers/create",
        b"name metered\ncpu 1000\nsmp 1\nmem 64\nide:0:0 %s\nboot ide:0:0\n" % drive.encode(),
        Accept="application/json",
    )
    assert status == 200, body
    server = json.loads(body)["server"]

    def points() -> list[str]:
        status, headers, body = call(f"/servers/{server}/metrics")
        assert status == 200 and headers["X-Elastic-Output"] == "list", body
        return body.decode().splitlines()

    wait_until(lambda: len(points()) >= 1, "a point from two samples", GUEST_DEADLINE)
    for line in points():
        check_line(line)
    status, _, body = call(f"/servers/{server}/destroy")
    assert status == 204, body
