#!/usr/bin/env python3
"""Benchmark: guest start through the libvirt driver against `virsh create`, and 20 starts at once."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elastic_api.config import HostConfig  # noqa: E402
from elastic_api.hypervisor.domain import DiskSpec, DomainSpec, domain_xml  # noqa: E402
from elastic_api.hypervisor.libvirt import LibvirtHypervisor  # noqa: E402
from elastic_api.model.device import Device  # noqa: E402
from elastic_api.model.server import DriveSlot, ServerConfig  # noqa: E402
from tests.hypervisor.bootsector_image import BOOT_MARKER, write_boot_image  # noqa: E402

# The raw-libvirt benchmark's guests belong to an installation of their own, made per run.
INSTALLATION = str(uuid.uuid4())

HOST = "bench"
HOST_CORE_MHZ = 2000


class Guest:
    """One throwaway server: its own copy of the boot disk (QEMU locks a writable image to one
    guest), its serial log and its domain XML. No NIC, no VNC: nothing leaves the host."""

    def __init__(self, workdir: Path, domain_type: str) -> None:
        self.server = str(uuid.uuid4())
        drive = str(uuid.uuid4())
        self.image = write_boot_image(workdir / f"{drive}.raw")
        self.log = workdir / f"{self.server}.log"
        disk = Device("ide", 0, 0)
        config = ServerConfig(name="bench", cpu=HOST_CORE_MHZ, mem=32, smp=1, drives=(DriveSlot(disk, drive),))
        self.xml = domain_xml(
            DomainSpec(
                self.server,
                config,
                {disk: DiskSpec(str(self.image), "raw")},
                serial_log=str(self.log),
                domain_type=domain_type,
                host_core_mhz=HOST_CORE_MHZ,
                installation=INSTALLATION,
            )
        )
        self.xml_file = workdir / f"{self.server}.xml"
        self.xml_file.write_text(self.xml)

    def booted(self) -> bool:
        return self.log.exists() and BOOT_MARKER in self.log.read_bytes()

    async def wait_booted(self, seconds: float) -> float:
        """Seconds (monotonic clock) at which the guest's marker was seen on its serial port."""
        deadline = time.monotonic() + seconds
        while not self.booted():
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest {self.server} did not boot within {seconds} s")
            await asyncio.sleep(0.005)
        return time.monotonic()


async def virsh(uri: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "virsh", "-q", "-c", uri, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {err.decode().strip()}")


async def one_start(
    hypervisor: LibvirtHypervisor, uri: str, workdir: Path, domain_type: str, how: str, boot_seconds: float
) -> tuple[float, float]:
    """(seconds until the start call returned, seconds until the guest ran its first code)."""
    guest = Guest(workdir, domain_type)
    begin = time.monotonic()
    if how == "driver":
        await hypervisor.start(HOST, guest.xml)
    else:
        await virsh(uri, "create", str(guest.xml_file))
    returned = time.monotonic()
    booted = await guest.wait_booted(boot_seconds)
    await hypervisor.stop(HOST, guest.server)
    return returned - begin, booted - begin


class ApiBench:
    """The real application (SQLite, drive pool, this libvirt host) on a loopback port, and one user."""

    def __init__(self, workdir: Path, uri: str, domain_type: str) -> None:
        from elastic_api.config import Config

        self.config = Config(
            data_dir=workdir / "api",
            hosts=(HostConfig(HOST, uri),),
            host_core_mhz=HOST_CORE_MHZ,
            domain_type=domain_type,
        )

    async def __aenter__(self) -> ApiBench:
        import aiohttp
        from aiohttp import web

        from elastic_api.app import SERVICES, create_app
        from elastic_api.hypervisor.libvirt import LibvirtHypervisor
        from elastic_api.installation import load_or_create
        from elastic_api.storage.pool import Pool
        from elastic_api.store.sqlite import SqliteStore

        config = self.config
        app = create_app(
            config,
            store=SqliteStore(config.db_path),
            storage=Pool(config.pool_dir, config.images_dir),
            hypervisor=LibvirtHypervisor.from_config(config, load_or_create(config.data_dir)),
        )
        self.runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)  # loopback only
        await site.start()
        port = self.runner.addresses[0][1]
        user, secret = await app[SERVICES].users.create("bench")
        self.servers = app[SERVICES].servers
        self.session = aiohttp.ClientSession(
            f"http://127.0.0.1:{port}",
            headers={"Authorization": aiohttp.encode_basic_auth(user, secret), "Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        async with self.session.get("/servers/list", headers={"Accept": "text/plain"}) as r:
            for server in (await r.text()).split()[::3]:
                await self.session.post(f"/servers/{server}/destroy")
        await self.session.close()
        await self.runner.cleanup()

    async def boot_drive(self) -> str:
        from tests.hypervisor.bootsector_image import boot_sector

        async with self.session.post("/drives/create", data=b"name boot\nsize 1M\n") as r:
            drive = (await r.json())["drive"]
        async with self.session.post(f"/drives/{drive}/write/0", data=boot_sector()) as r:
            assert r.status == 204
        return str(drive)

    async def create(self, drive: str, deadline: float) -> tuple[float, float]:
        """(seconds until POST /servers/create answered, until the guest ran its first code)."""
        body = {
            "name": "bench",
            "cpu": str(HOST_CORE_MHZ),
            "smp": "1",
            "mem": "32",
            "ide:0:0": drive,
            "boot": "ide:0:0",
        }
        begin = time.monotonic()
        async with self.session.post("/servers/create", json=body) as r:
            if r.status != 200:
                raise RuntimeError(f"create: {r.status} {await r.text()}")
            server = (await r.json())["server"]
        returned = time.monotonic()
        log = self.servers.serial_log(server)
        while not (log.exists() and BOOT_MARKER in log.read_bytes()):
            if time.monotonic() - begin > deadline:
                raise TimeoutError(f"server {server} did not boot")
            await asyncio.sleep(0.005)
        return returned - begin, time.monotonic() - begin

    async def destroy_all(self) -> None:
        async with self.session.get("/servers/list", headers={"Accept": "text/plain"}) as r:
            for server in (await r.text()).split()[::3]:
                await self.session.post(f"/servers/{server}/destroy")


async def bench_api(args: argparse.Namespace, workdir: Path, hypervisor: LibvirtHypervisor, domain_type: str) -> None:
    """POST /servers/create to guest running, against virsh create of the same kind of guest."""
    async with ApiBench(workdir, args.uri, domain_type) as api:
        drives = [await api.boot_drive() for _ in range(max(args.runs, args.concurrent) + 1)]
        await api.create(drives.pop(), args.timeout)  # warm caches
        await api.destroy_all()
        results: dict[str, list[tuple[float, float]]] = {"api": [], "virsh": []}
        for _ in range(args.runs):
            results["api"].append(await api.create(drives[0], args.timeout))
            await api.destroy_all()
            results["virsh"].append(await one_start(hypervisor, args.uri, workdir, domain_type, "virsh", args.timeout))
        api_boot = statistics.median(r[1] for r in results["api"])
        virsh_boot = statistics.median(r[1] for r in results["virsh"])
        answered = statistics.median(r[0] for r in results["api"])
        print(
            f"   api: POST /servers/create answered after {answered * 1000:7.1f} ms, "
            f"guest running after {api_boot * 1000:7.1f} ms (median)"
        )
        print(f"ratio POST /servers/create / virsh create: {api_boot / virsh_boot:.2f} to guest running")

        begin = time.monotonic()
        times = sorted(
            t for _, t in await asyncio.gather(*(api.create(d, args.timeout) for d in drives[: args.concurrent]))
        )
        print(
            f"{args.concurrent} servers created at once through the API: all running after "
            f"{time.monotonic() - begin:.2f} s (median {statistics.median(times):.2f} s)"
        )
        await api.destroy_all()


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="elastic-bench-", dir="/var/tmp"))
    hypervisor = LibvirtHypervisor([HostConfig(HOST, args.uri)], installation=INSTALLATION, host_core_mhz=HOST_CORE_MHZ)
    await hypervisor.open()
    started: list[str] = []
    try:
        domain_type = args.domain_type or await hypervisor.domain_type(HOST)
        print(f"host {args.uri}, domain type {domain_type}, {args.runs} runs each")
        await one_start(hypervisor, args.uri, workdir, domain_type, "driver", args.timeout)  # warm caches

        results: dict[str, list[tuple[float, float]]] = {"driver": [], "virsh": []}
        for _ in range(args.runs):
            for how in ("driver", "virsh"):  # interleaved, so drift hits both alike
                results[how].append(await one_start(hypervisor, args.uri, workdir, domain_type, how, args.timeout))
        for how, runs in results.items():
            call = statistics.median(r[0] for r in runs)
            boot = statistics.median(r[1] for r in runs)
            print(f"{how:>6}: start call {call * 1000:7.1f} ms, guest running after {boot * 1000:7.1f} ms (median)")
        driver_boot = statistics.median(r[1] for r in results["driver"])
        virsh_boot = statistics.median(r[1] for r in results["virsh"])
        driver_call = statistics.median(r[0] for r in results["driver"])
        virsh_call = statistics.median(r[0] for r in results["virsh"])
        print(
            f"ratio driver / virsh create: {driver_boot / virsh_boot:.2f} to guest running, "
            f"{driver_call / virsh_call:.2f} for the start call alone"
        )

        if args.api:
            await bench_api(args, workdir, hypervisor, domain_type)
            return

        guests = [Guest(workdir, domain_type) for _ in range(args.concurrent)]
        started.extend(g.server for g in guests)
        begin = time.monotonic()

        async def start_one(guest: Guest) -> float:
            await hypervisor.start(HOST, guest.xml)
            return await guest.wait_booted(args.timeout) - begin

        times = sorted(await asyncio.gather(*(start_one(g) for g in guests)))
        print(
            f"{args.concurrent} guests started at once: all running after {times[-1]:.2f} s "
            f"(first {times[0]:.2f} s, median {statistics.median(times):.2f} s)"
        )
    finally:
        for server in started:
            await hypervisor.stop(HOST, server)
        await hypervisor.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", default="qemu:///system", help="libvirt URI of the host (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="starts per method (default %(default)s)")
    parser.add_argument("--concurrent", type=int, default=20, help="guests started at once (default %(default)s)")
    parser.add_argument("--domain-type", choices=("kvm", "qemu"), help="default: kvm when the host has it")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a guest may take to boot")
    parser.add_argument(
        "--api",
        action="store_true",
        help="through the HTTP API: POST /servers/create against virsh create, and "
        "--concurrent servers created at once",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
