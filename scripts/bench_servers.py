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
from elastic_api.hypervisor.libvirt_driver import LibvirtHypervisor  # noqa: E402
from elastic_api.model.server import parse_config  # noqa: E402
from tests.hypervisor.bootsector_image import BOOT_MARKER, write_boot_image  # noqa: E402

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
        config = parse_config({"name": "bench", "cpu": str(HOST_CORE_MHZ), "smp": "1", "mem": "32",
                               "ide:0:0": drive}, self.server)
        self.xml = domain_xml(DomainSpec(self.server, config, {"ide:0:0": DiskSpec(str(self.image), "raw")},
                                         serial_log=str(self.log), domain_type=domain_type,
                                         host_core_mhz=HOST_CORE_MHZ))
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
    process = await asyncio.create_subprocess_exec("virsh", "-q", "-c", uri, *args,
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {err.decode().strip()}")


async def one_start(hypervisor: LibvirtHypervisor, uri: str, workdir: Path, domain_type: str, how: str,
                    boot_seconds: float) -> tuple[float, float]:
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


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="elastic-bench-", dir="/var/tmp"))
    hypervisor = LibvirtHypervisor([HostConfig(HOST, args.uri)], host_core_mhz=HOST_CORE_MHZ)
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
        print(f"ratio driver / virsh create: {driver_boot / virsh_boot:.2f} to guest running, "
              f"{driver_call / virsh_call:.2f} for the start call alone")

        guests = [Guest(workdir, domain_type) for _ in range(args.concurrent)]
        started.extend(g.server for g in guests)
        begin = time.monotonic()

        async def start_one(guest: Guest) -> float:
            await hypervisor.start(HOST, guest.xml)
            return await guest.wait_booted(args.timeout) - begin

        times = sorted(await asyncio.gather(*(start_one(g) for g in guests)))
        print(f"{args.concurrent} guests started at once: all running after {times[-1]:.2f} s "
              f"(first {times[0]:.2f} s, median {statistics.median(times):.2f} s)")
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
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
