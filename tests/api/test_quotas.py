"""Quotas over HTTP: every limit answers 402 `billing` naming it, and nothing is created or changed."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config
from elastic_api.model.quota import Quota
from tests.support import Server, create_user, request, run_cli, write_config

MiB = 1 << 20
LIMITS = Quota(drive_bytes=10 * MiB, drives=3, servers=2, cpu=3000, mem=1024, ips=4)


@pytest.fixture
def config(config: Config) -> Config:
    return dataclasses.replace(config, quotas=LIMITS)


def pool_files(config: Config) -> set[str]:
    return {p.name for p in config.pool_dir.iterdir()} if config.pool_dir.exists() else set()


async def drives_of(api) -> list[str]:
    return (await api.get("/drives/list")).text.split()


async def servers_of(api) -> list[str]:
    return [line.split()[0] for line in (await api.get("/servers/list")).text.splitlines()]


async def running(client) -> set[str]:
    return set(await client.app[SERVICES].servers.hypervisor.running())


def refused(reply, message: str) -> None:
    assert reply.status == 402, reply.text
    assert reply.error == "billing" and reply.text == message + "\n"


async def test_drive_bytes(alice, config):
    await alice.create_drive("6M")
    before, files = await drives_of(alice), pool_files(config)
    refused(await alice.call("/drives/create", "name big\nsize 5M\n"), "quota exceeded: drive bytes 11M of 10M")
    assert await drives_of(alice) == before and pool_files(config) == files
    await alice.create_drive("4M")  # exactly at the limit


async def test_drive_count(alice, config):
    for _ in range(3):
        await alice.create_drive("1M")
    before, files = await drives_of(alice), pool_files(config)
    refused(await alice.call("/drives/create", {"name": "d", "size": "1M"}), "quota exceeded: drives 4 of 3")
    assert await drives_of(alice) == before and pool_files(config) == files
    await alice.call(f"/drives/{before[0]}/destroy")
    await alice.create_drive("1M")  # destroying frees the slot


async def test_growing_a_drive(alice, config):
    drive = (await alice.create_drive("4M"))["drive"]
    await alice.create_drive("4M")
    path = config.pool_dir / f"{drive}.raw"
    refused(await alice.call(f"/drives/{drive}/set", "size 7M\nname grown\n"), "quota exceeded: drive bytes 11M of 10M")
    info = (await alice.get(f"/drives/{drive}/info")).props()
    assert info["size"] == str(4 * MiB) and info["name"] == "d" and path.stat().st_size == 4 * MiB
    # A set that does not grow the drive is never refused, even at the limit.
    assert (await alice.call(f"/drives/{drive}/set", "size 6M\n")).status == 200
    assert (await alice.call(f"/drives/{drive}/set", "name renamed\n")).status == 200
    assert path.stat().st_size == 6 * MiB


async def test_ip_count(alice, bob):
    ips = []
    for _ in range(4):
        reply = await alice.call("/resources/ip/create", "name ip\n")
        assert reply.status == 200, reply.text
        ips.append(reply.props()["resource"])
    before = (await alice.get("/resources/ip/list")).text
    refused(await alice.call("/resources/ip/create", "name one-more\n"), "quota exceeded: ips 5 of 4")
    assert (await alice.get("/resources/ip/list")).text == before
    assert (await bob.call("/resources/ip/create", "")).status == 200  # bob's own limit
    assert (await alice.call("/resources/vlan/create", "")).status == 200  # VLANs are not IPs
    assert (await alice.call(f"/resources/ip/{ips[0]}/destroy")).status == 204
    assert (await alice.call("/resources/ip/create", "")).status == 200  # destroying frees the slot


async def test_quotas_are_per_user(alice, bob):
    for _ in range(3):
        await alice.create_drive("1M")
    assert (await alice.call("/drives/create", "name d\nsize 1M\n")).status == 402
    await bob.create_drive("1M")


async def test_server_count(alice, client):
    body = {"name": "s", "cpu": "500", "mem": "64"}
    for _ in range(2):
        assert (await alice.call("/servers/create/stopped", body)).status == 200
    before = await servers_of(alice)
    refused(await alice.call("/servers/create/stopped", body), "quota exceeded: servers 3 of 2")
    refused(await alice.call("/servers/create", body), "quota exceeded: servers 3 of 2")
    assert await servers_of(alice) == before and not await running(client)


async def test_cpu_of_active_servers_on_create(alice, client):
    first = await alice.call("/servers/create", {"name": "a", "cpu": "2000", "mem": "256"}, as_json=True)
    assert first.status == 200
    refused(
        await alice.call("/servers/create", {"name": "b", "cpu": "1500", "mem": "256"}),
        "quota exceeded: cpu of active servers 3500 MHz of 3000 MHz",
    )
    assert await servers_of(alice) == [first.json["server"]]  # the refused server is not left stopped
    assert await running(client) == {first.json["server"]}
    # A stopped server costs no cpu: creating it stopped is fine, starting it is not.
    stopped = (
        await alice.call("/servers/create/stopped", {"name": "c", "cpu": "1500", "mem": "64"}, as_json=True)
    ).json["server"]
    refused(await alice.call(f"/servers/{stopped}/start"), "quota exceeded: cpu of active servers 3500 MHz of 3000 MHz")
    assert (await alice.get(f"/servers/{stopped}/info")).props()["status"] == "stopped"
    assert await running(client) == {first.json["server"]}
    # Stopping the first frees its cpu.
    assert (await alice.call(f"/servers/{first.json['server']}/stop")).status == 204
    assert (await alice.call(f"/servers/{stopped}/start")).status == 204


async def test_mem_of_active_servers_on_start(alice, client):
    a = (
        await alice.call(
            "/servers/create", {"name": "a", "cpu": "500", "mem": "600", "persistent": "true"}, as_json=True
        )
    ).json["server"]
    b = (await alice.call("/servers/create/stopped", {"name": "b", "cpu": "500", "mem": "600"}, as_json=True)).json[
        "server"
    ]
    refused(await alice.call(f"/servers/{b}/start"), "quota exceeded: mem of active servers 1200 MB of 1024 MB")
    assert (await alice.get(f"/servers/{b}/info")).props()["status"] == "stopped"
    assert await running(client) == {a}


async def test_live_cpu_change(alice):
    server = (await alice.call("/servers/create", {"name": "a", "cpu": "2000", "mem": "64"}, as_json=True)).json[
        "server"
    ]
    refused(
        await alice.call(f"/servers/{server}/set", {"cpu": "3500"}),
        "quota exceeded: cpu of active servers 3500 MHz of 3000 MHz",
    )
    assert (await alice.get(f"/servers/{server}/info")).props()["cpu"] == "2000"
    # Within the quota the change goes on to the hypervisor (whose test driver cannot change a
    # running guest's CPU: tests/hypervisor covers that on the real libvirt).
    within = await alice.call(f"/servers/{server}/set", {"cpu": "3000"})
    assert within.error == "failed" and "could not change the CPU" in within.text


async def test_concurrent_creates_cannot_overshoot(alice, client, config):
    replies = await asyncio.gather(*(alice.call("/drives/create", f"name d{i}\nsize 1M\n") for i in range(8)))
    assert sorted(r.status for r in replies) == [200] * 3 + [402] * 5
    assert len(await drives_of(alice)) == 3 and len(pool_files(config)) == 3

    body = {"name": "s", "cpu": "1000", "mem": "64"}
    replies = await asyncio.gather(*(alice.call("/servers/create/stopped", body) for _ in range(6)))
    assert sorted(r.status for r in replies) == [200] * 2 + [402] * 4
    assert len(await servers_of(alice)) == 2


async def test_concurrent_starts_cannot_overshoot(alice, client):
    """Two stopped servers of 2000 MHz each with room for one: started at once, exactly one runs."""
    alice_servers = [
        (await alice.call("/servers/create/stopped", {"name": f"s{i}", "cpu": "2000", "mem": "64"}, as_json=True)).json[
            "server"
        ]
        for i in range(2)
    ]
    replies = await asyncio.gather(*(alice.call(f"/servers/{s}/start") for s in alice_servers))
    assert sorted(r.status for r in replies) == [204, 402]
    assert len(await running(client)) == 1


def test_per_user_override_through_the_real_cli(tmp_path):
    config = write_config(tmp_path, quotas={"drives": 1, "drive_bytes": "1G"})
    user, secret = create_user(config)
    other, other_secret = create_user(config)
    shown = run_cli(config, "user", "show-quota", user)
    assert shown.returncode == 0 and "drives 1 0 default" in shown.stdout.splitlines()
    server = Server(config).start()
    try:
        create = (server.url + "/drives/create", user, secret, b"name d\nsize 1M\n")
        assert request(*create)[0] == 200
        status, headers, body = request(*create)
        assert (status, headers["X-Elastic-Error"], body) == (402, "billing", b"quota exceeded: drives 2 of 1\n")

        result = run_cli(config, "user", "set-quota", user, "drives=3", "drive_bytes=unlimited")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[:2] == ["drive_bytes unlimited 1048576 user", "drives 3 1 user"]
        assert request(*create)[0] == 200  # the running server sees the new limit at once
        status, _, body = request(server.url + "/drives/create", user, secret, b"name d\nsize 2G\n")
        assert status == 200
        # The other user keeps the defaults.
        assert request(server.url + "/drives/create", other, other_secret, b"name d\nsize 1M\n")[0] == 200
        assert request(server.url + "/drives/create", other, other_secret, b"name d\nsize 1M\n")[0] == 402

        back = run_cli(config, "user", "set-quota", user, "drives=default")
        assert back.returncode == 0 and "drives 1 3 default" in back.stdout.splitlines()
        assert request(*create)[0] == 402
    finally:
        server.stop()
    for args, word in (
        (("set-quota", user, "colour=3"), "unknown quota key"),
        (("set-quota", user, "drives"), "key=value"),
        (("set-quota", "00000000-0000-4000-8000-000000000000", "drives=1"), "no such user"),
        (("show-quota", "nobody"), "no such user"),
    ):
        result = run_cli(config, "user", *args)
        assert result.returncode == 2 and word in result.stderr and not result.stdout


def test_bad_quotas_in_the_config(tmp_path):
    config = write_config(tmp_path, quotas={"drives": "many"})
    result = run_cli(config, "user", "create")
    assert result.returncode == 2 and "quotas: drives must be a whole number" in result.stderr
