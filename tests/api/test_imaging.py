"""Imaging over HTTP: conversions, standard images, progress, queueing, failures, restarts."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import zlib

import pytest

from elastic_api.app import SERVICES
from elastic_api.model.job import IMAGE, ImageParams, Job
from tests.api.test_drive_bytes import mixed

MiB = 1 << 20


async def settled(api, drive, timeout=60.0):
    """The drive's info once no image job is queued or running on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        info = (await api.get(f"/drives/{drive}/info", as_json=True)).json
        if "imaging" not in info:
            return info
        await asyncio.sleep(0.02)
    raise AssertionError(f"drive {drive} still imaging: {info}")


async def filled(api, size, data, **keys):
    drive = (await api.create_drive(str(size), **keys))["drive"]
    assert (await api.call(f"/drives/{drive}/write/0", data)).status == 204
    return drive


async def read_all(api, drive, size):
    return (await api.get(f"/drives/{drive}/read/0/{size}")).body


@pytest.mark.parametrize(
    "source_format, target_format", [("raw", "raw"), ("raw", "qcow2"), ("qcow2", "raw"), ("qcow2", "qcow2")]
)
async def test_copy_between_formats(alice, config, tmp_path, source_format, target_format):
    size = 6 * MiB
    data = mixed(size)
    source = await filled(alice, size, data, format=source_format)
    target = await filled(alice, size, os.urandom(size), format=target_format)  # old bytes are replaced
    reply = await alice.call(f"/drives/{target}/image/{source}")
    assert reply.status == 204 and reply.body == b""
    info = await settled(alice, target)
    assert "imaging:error" not in info and info["claimed"] == []
    assert await read_all(alice, target, size) == data
    if target_format == "qcow2":
        path = config.pool_dir / f"{target}.qcow2"
        subprocess.run(["qemu-img", "check", "-U", "-q", "-f", "qcow2", str(path)], check=True)


async def test_gzip_then_gunzip_round_trip(alice):
    size = 4 * MiB
    data = mixed(size, seed=3)
    source = await filled(alice, size, data)
    packed = (await alice.create_drive(str(size)))["drive"]
    unpacked = (await alice.create_drive(str(size), format="qcow2"))["drive"]
    assert (await alice.call(f"/drives/{packed}/image/{source}/gzip")).status == 204
    await settled(alice, packed)
    compressed = await read_all(alice, packed, size)
    assert gzip.GzipFile(fileobj=__import__("io").BytesIO(compressed)).read(size) == data
    assert (await alice.call(f"/drives/{unpacked}/image/{packed}/gunzip")).status == 204
    await settled(alice, unpacked)
    assert await read_all(alice, unpacked, size) == data


async def test_standard_images(alice, bob, client, tmp_path):
    raw = tmp_path / "debian.raw"
    data = mixed(3 * MiB + 17, seed=9)
    raw.write_bytes(data)
    image = "e6111e4c-67af-4438-b1bc-189747d5a8e5"
    await client.app[SERVICES].imaging.add_standard(image, "Debian Linux 12", raw)

    for user in (alice, bob):
        assert (await user.get("/drives/list/standard")).text == f"{image}\n"
        for path in ("/drives/info/standard", "/drives/standard/info"):
            (info,) = (await user.get(path, as_json=True)).json
            assert info["drive"] == image and info["name"] == "Debian Linux 12" and info["size"] == len(data)
    assert (await alice.get("/drives/list")).text == ""  # the library is not the user's drives

    drive = (await alice.create_drive("4M"))["drive"]
    assert (await alice.call(f"/drives/{drive}/image/{image}/gunzip")).status == 204
    await settled(alice, drive)
    assert await read_all(alice, drive, 4 * MiB) == data + bytes(4 * MiB - len(data))


async def test_a_standard_image_too_big_for_the_drive_fails_cleanly(alice, client, tmp_path):
    raw = tmp_path / "big.raw"
    raw.write_bytes(os.urandom(2 * MiB))
    image = "0e5e5c8a-1f0e-4b8e-9f2c-7d1d3d0c9b01"
    await client.app[SERVICES].imaging.add_standard(image, "big", raw)
    drive = (await alice.create_drive("1M"))["drive"]
    assert (await alice.call(f"/drives/{drive}/image/{image}/gunzip")).status == 204
    info = await settled(alice, drive)
    assert "imaging:error" in info and info["claimed"] == []
    assert (await alice.call(f"/drives/{drive}/write/0", b"after")).status == 204  # no lock behind


async def test_failed_job_marks_the_drive_and_leaves_no_lock(alice):
    source = await filled(alice, MiB, b"not gzip at all")
    target = (await alice.create_drive("1M"))["drive"]
    assert (await alice.call(f"/drives/{target}/image/{source}/gunzip")).status == 204
    info = await settled(alice, target)
    assert "gzip" in info["imaging:error"] and info["claimed"] == []
    assert (await alice.call(f"/drives/{target}/write/0", b"after")).status == 204
    assert (await alice.call(f"/drives/{target}/destroy")).status == 204


class Gate:
    """Holds a real copy at 50% until released, so a test can look at a running job."""

    def __init__(self, pool):
        self.pool, self.real_copy = pool, pool.copy
        self.started, self.release = asyncio.Event(), asyncio.Event()
        self.progress_calls = 0
        pool.copy = self.copy

    async def copy(self, source, target, conversion, progress):
        def counted(done, total):
            self.progress_calls += 1
            progress(done, total)

        progress(50, 100)
        self.started.set()
        await self.release.wait()
        self.started.clear()
        await self.real_copy(source, target, conversion, counted)


async def test_running_job_shows_progress_claims_and_queue(alice, client):
    gate = Gate(client.app[SERVICES].drives.storage)
    data = mixed(2 * MiB, seed=5)
    source = await filled(alice, 2 * MiB, data)
    target = (await alice.create_drive("2M"))["drive"]

    assert (await alice.call(f"/drives/{target}/image/{source}")).status == 204
    await gate.started.wait()
    for path in (f"/drives/{target}/info", f"/drives/{target}/info/full"):
        info = (await alice.get(path, as_json=True)).json
        assert info["imaging"] == "50%" and info["claimed"] == [f"image:{source}"]
    assert (await alice.call(f"/drives/{target}/write/0", b"x")).status == 409
    assert (await alice.call(f"/drives/{target}/destroy")).status == 409
    assert (await alice.call(f"/drives/{source}/destroy")).status == 409  # being read by the job

    assert (await alice.call(f"/drives/{target}/image/{source}/gzip")).status == 204  # queued behind
    gate.release.set()
    await settled(alice, target)
    assert gate.progress_calls > 0
    inflate = zlib.decompressobj(31)  # the queued job ran second: a gzip stream, then zeros
    assert inflate.decompress(await read_all(alice, target, 2 * MiB)) == data and inflate.eof
    assert (await alice.call(f"/drives/{target}/destroy")).status == 204
    assert (await alice.call(f"/drives/{source}/destroy")).status == 204


async def test_image_refusals(alice, bob):
    mine = (await alice.create_drive("1M"))["drive"]
    theirs = (await bob.create_drive("1M"))["drive"]
    shared = (await bob.create_drive("1M", readers=alice.user))["drive"]
    for path, status in (
        (f"/drives/{mine}/image/{theirs}", 404),
        (f"/drives/{theirs}/image/{mine}", 404),
        (f"/drives/{shared}/image/{mine}", 404),
        (f"/drives/{mine}/image/{mine}", 400),
        (f"/drives/{mine}/image/{shared}/unzip", 404),
        (f"/drives/{mine}/image/not-a-uuid", 404),
    ):
        reply = await alice.call(path)
        assert reply.status == status, path
    assert (await alice.get(f"/drives/{mine}/image/{shared}")).status == 405
    assert (await alice.call(f"/drives/{mine}/image/{shared}")).status == 204  # readers may image from it
    await settled(alice, mine)


async def test_interrupted_jobs_resume_at_start(config, serve):
    from tests.conftest import Api, make_app

    data = mixed(MiB, seed=11)
    first = await serve(make_app(config))
    services = first.app[SERVICES]
    user, secret = await services.users.create()
    api = Api(first, user, secret)
    source = await filled(api, MiB, data)
    target = (await api.create_drive("1M"))["drive"]
    # A job recorded but never run, as if the server died right after answering 204.
    await services.drives.store.add_job(Job(0, IMAGE, user, target, ImageParams(source, ""), created=1))
    await first.close()

    api = Api(await serve(make_app(config)), user, secret)
    info = await settled(api, target)
    assert "imaging:error" not in info
    assert await read_all(api, target, MiB) == data
