#!/usr/bin/env python3
"""Benchmark: an ECS create, from `POST /ecs/v2/servers` to its create action completed, as a
ratio to `virsh create` of the same prepared domain in the same run; then 20 creates at once.

A real `elastic-api serve` on qemu:///system with the engine's defaults (boot drives qcow2 with
LUKS inside) and a small plan (1 core, 64 MB, 1 GB: the guest is the boot-sector test image).
The baseline domain is the XML libvirt holds for the first ECS server, renamed, on a raw copy of
the boot image and without its NIC (no lease, no secret): what a bare `virsh create` costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hypervisor.bootsector_image import BOOT_MARKER, write_boot_image  # noqa: E402
from tests.support import free_port, remove_guests_under, remove_network_if_unused  # noqa: E402

URI = "qemu:///system"
IMAGE = "be0c0000-0000-4000-8000-000000000001"
PLAN = {"name": "BENCH", "cpu": 1, "ram": 64, "disk": 1}
PROGRAM = str(ROOT / ".venv" / "bin" / "elastic-api")


def cli(config: Path, *args: str) -> str:
    done = subprocess.run([PROGRAM, "--config", str(config), *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"elastic-api {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Ecs:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.url + "/ecs/v2" + path, json=body) as reply:
            data = await reply.json(content_type=None)
            if reply.status != 200:
                raise RuntimeError(f"{method} {path}: {reply.status} {data}")
            return data

    async def create(self) -> tuple[str, int, float]:
        """(name, action id, seconds the POST took)."""
        start = time.perf_counter()
        made = await self.call(
            "POST", "/servers", {"plan": PLAN["name"], "image": "boot-sector-1", "location": "local", "notes": "bench"}
        )
        return made["server"]["name"], made["action_id"], time.perf_counter() - start

    async def wait(self, action: int, deadline: float = 600) -> None:
        end = time.monotonic() + deadline
        while True:
            found = (await self.call("GET", f"/actions/{action}"))["action"]
            if found["status"] == "completed":
                return
            if found["status"] == "failed":
                raise RuntimeError(f"action {action} failed: {found.get('error')}")
            if time.monotonic() > end:
                raise TimeoutError(f"action {action} still in progress")
            await asyncio.sleep(0.01)

    async def create_to_completed(self) -> tuple[str, float, float]:
        """(name, seconds answered, seconds until its action completed)."""
        start = time.perf_counter()
        name, action, answered = await self.create()
        await self.wait(action)
        return name, answered, time.perf_counter() - start

    async def delete_all(self) -> None:
        for server in (await self.call("GET", "/servers"))["server"]:
            if server["status"] != "Deleting":
                await self.wait((await self.call("DELETE", f"/servers/{server['name']}"))["action"]["id"])


def baseline_xml(workdir: Path, domain: str) -> Path:
    """The ECS guest's domain as libvirt holds it, renamed, on a raw boot disk, without NIC."""
    xml = subprocess.run(["virsh", "-c", URI, "dumpxml", domain], capture_output=True, text=True, check=True).stdout
    root = ET.fromstring(xml)
    root.attrib.pop("id", None)
    server = str(uuid.uuid4())
    root.find("name").text = f"bench-{server}"  # type: ignore[union-attr]
    root.find("uuid").text = server  # type: ignore[union-attr]
    devices = root.find("devices")
    assert devices is not None
    for nic in devices.findall("interface"):
        devices.remove(nic)
    disk = devices.find("disk")
    assert disk is not None
    boot = write_boot_image(workdir / f"{server}.raw")
    driver, source = disk.find("driver"), disk.find("source")
    assert driver is not None and source is not None
    driver.set("type", "raw")
    for child in list(source):
        source.remove(child)
    source.set("file", str(boot))
    for backing in disk.findall("backingStore"):  # a copy-on-write drive's base: the raw copy has none
        disk.remove(backing)
    for serial in (*devices.findall("serial"), *devices.findall("console")):
        found = serial.find("source")
        if found is not None:
            found.set("path", str(workdir / f"{server}.serial.log"))
    path = workdir / f"{server}.xml"
    path.write_text(ET.tostring(root, encoding="unicode"))
    return path


def virsh_create(path: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(["virsh", "-q", "-c", URI, "create", str(path)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"virsh create: {done.stderr.strip()}")
    return time.perf_counter() - start


async def engine_domain(session: aiohttp.ClientSession, url: str, auth: aiohttp.BasicAuth, name: str) -> str:
    """The libvirt domain of the ECS server `name`: the engine's server of that name (the other
    dialect's list), `elastic-UUID`."""
    async with session.get(f"{url}/servers/info", auth=auth, headers={"Accept": "application/json"}) as reply:
        found = await reply.json(content_type=None)
    return "elastic-" + next(s["server"] for s in found if s["name"] == name)


def boots(logs: Path, before: set[Path]) -> int:
    return sum(BOOT_MARKER in p.read_bytes() for p in set(logs.glob("*.serial.log")) - before)


async def bench(
    args: argparse.Namespace, workdir: Path, port: int, token: str, baselines: list[Path], auth: aiohttp.BasicAuth
) -> None:
    async with aiohttp.ClientSession(headers={"X-APITOKEN": token}, connector=aiohttp.TCPConnector(limit=0)) as session:
        ecs = Ecs(session, f"http://127.0.0.1:{port}")
        for _ in range(600):
            try:
                await ecs.call("GET", "/plans")
                break
            except (aiohttp.ClientError, RuntimeError):
                await asyncio.sleep(0.05)
        singles, answers, baseline = [], [], []
        for _ in range(args.rounds):
            name, answered, seconds = await ecs.create_to_completed()
            singles.append(seconds)
            answers.append(answered)
            domain = await engine_domain(session, ecs.url, auth, name)
            baselines.append(await asyncio.to_thread(baseline_xml, workdir, domain))
            baseline.append(await asyncio.to_thread(virsh_create, baselines[-1]))
            await ecs.delete_all()
        single, bare = statistics.median(singles), statistics.median(baseline)
        print(
            f"one create: POST answered in {statistics.median(answers) * 1000:.1f} ms (median of {args.rounds}); "
            f"POST -> action completed {single:.3f} s; virsh create of the same domain {bare:.3f} s; "
            f"ratio {single / bare:.2f}"
        )
        logs = workdir / "var" / "logs"
        before = set(logs.glob("*.serial.log"))
        start = time.perf_counter()
        made = await asyncio.gather(*(ecs.create() for _ in range(args.many)))
        answered_all = time.perf_counter() - start
        await asyncio.gather(*(ecs.wait(action) for _, action, _ in made))
        completed_all = time.perf_counter() - start
        slowest = max(seconds for _, _, seconds in made)
        print(
            f"{args.many} creates at once: every POST answered within {slowest * 1000:.0f} ms (all in "
            f"{answered_all:.3f} s); every action completed in {completed_all:.3f} s "
            f"({completed_all / bare:.1f} x one virsh create)"
        )
        deadline = time.monotonic() + 300
        while True:
            if await asyncio.to_thread(boots, logs, before) >= args.many or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        print(
            f"{await asyncio.to_thread(boots, logs, before)} of the {args.many} guests printed their boot marker, "
            f"the last {time.perf_counter() - start:.3f} s after the first POST"
        )
        await ecs.delete_all()
        print(
            json.dumps(
                {
                    "single_s": single,
                    "virsh_s": bare,
                    "ratio": single / bare,
                    "many": args.many,
                    "many_answered_s": answered_all,
                    "many_completed_s": completed_all,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="single creates to take the median of")
    parser.add_argument("--many", type=int, default=20, help="creates at once")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ecs-"))
    port = free_port()
    config = workdir / "elastic-api.yaml"
    # A public network of its own: the shared one's addresses may be held by other installations'
    # guests on this libvirtd (tests running meanwhile), which this one's pool knows nothing of.
    subnet = f"10.{random.randrange(200, 250)}.{random.randrange(0, 250)}"
    network = f"bench-ecs-{port}"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "data_dir": str(workdir / "var"),
                "hosts": [{"name": "local", "uri": URI}],
                "plans": [PLAN],
                "public_network": network,
                "ip_pool": {
                    "network": f"{subnet}.0/24",
                    "gateway": f"{subnet}.1",
                    "nameserver": f"{subnet}.1",
                    "range": f"{subnet}.10-{subnet}.254",
                },
            }
        )
    )
    made = dict(line.split(" ", 1) for line in cli(config, "user", "create").splitlines())
    user, auth = made["user"], aiohttp.BasicAuth(made["user"], made["secret"])
    cli(config, "user", "set-quota", user, *(f"{k}=unlimited" for k in ("servers", "cpu", "mem", "drives")))
    cli(config, "image", "add", "--uuid", IMAGE, "--name", "Boot Sector 1", str(write_boot_image(workdir / "b.raw")))
    token = cli(config, "user", "token", "create", user).split()[1]
    baselines: list[Path] = []
    with open(workdir / "server.log", "wb") as log:
        server = subprocess.Popen([PROGRAM, "--config", str(config), "serve"], stdout=log, stderr=log)
        try:
            asyncio.run(bench(args, workdir, port, token, baselines, auth))
        finally:
            for path in baselines:
                subprocess.run(["virsh", "-q", "-c", URI, "destroy", f"bench-{path.stem}"], capture_output=True)
            server.terminate()
            server.wait(30)
            remove_guests_under(URI, workdir)
            remove_network_if_unused(URI, network)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
