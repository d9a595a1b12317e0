"""elastichosts-upload: a file or block device into a drive, in gzipped chunks, resumable."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import zlib
from collections.abc import Sequence

from elastic_api.tools import cli
from elastic_api.tools.api import Api, Endpoint, RetryPolicy, SetupError, ToolError
from elastic_api.tools.chunks import Transfer, is_zero
from elastic_api.tools.progress import Progress
from elastic_api.tools.verify import describe, verify

PROGRAM = "elastichosts-upload"
# Level 1 gets most of gzip's saving on disk images at a fraction of the default level's CPU time.
GZIP_LEVEL = 1
# The longest drive name the API takes.
MAX_NAME = 256


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Upload a file or block device to a new drive (or into an existing one with -d), "
        "in chunks sent in parallel, retried on transient failures and resumable with -o.",
        epilog=cli.ENVIRONMENT_HELP,
    )
    cli.add_transfer_options(p)
    p.add_argument("-d", "--drive", metavar="DRIVE", help="upload into this existing drive (default: create one)")
    p.add_argument("-n", "--name", metavar="NAME", help="name of the new drive (default: the file's name)")
    p.add_argument("-t", "--tier", metavar="TIER", help="storage tier of the new drive: disk or ssd")
    p.add_argument(
        "-o",
        "--offset",
        type=cli.size_arg,
        default=0,
        metavar="OFFSET",
        help="resume: start at this byte of the file (default: 0; needs -d)",
    )
    p.add_argument(
        "--skip-zeros",
        action="store_true",
        help="do not send all-zero chunks: the drive is known to be zero there "
        "(always so for a drive this upload creates)",
    )
    p.add_argument("file", metavar="FILE|BLOCKDEV")
    return p


def check(args: argparse.Namespace) -> None:
    if args.drive and (args.name or args.tier):
        raise SetupError("-n and -t describe a new drive; they cannot go with -d")
    if args.offset and not args.drive:
        raise SetupError("-o resumes an upload into an existing drive: give its UUID with -d")


def restart(args: argparse.Namespace, drive: str, offset: int, skip_zeros: bool) -> str:
    words = [*cli.transfer_words(args), "-d", drive, "-o", str(offset)]
    if skip_zeros:
        words.append("--skip-zeros")
    return cli.command_line(PROGRAM, words, [args.file])


def encode(data: bytes, gzip: bool) -> tuple[bytes, dict[str, str]]:
    """The body for a chunk: gzipped when that makes it smaller, raw otherwise."""
    headers = {"Content-Type": "application/octet-stream"}
    if gzip:
        packed = zlib.compress(data, GZIP_LEVEL, wbits=16 + zlib.MAX_WBITS)
        if len(packed) < len(data):
            return packed, {**headers, "Content-Encoding": "gzip"}
    return data, headers


class Upload:
    def __init__(self, args: argparse.Namespace, api: Api, fd: int, size: int, progress: Progress) -> None:
        self.args, self.api, self.fd, self.size, self.progress = args, api, fd, size, progress
        self.drive = args.drive or ""
        self.skip_zeros = bool(args.skip_zeros)

    async def open_drive(self) -> None:
        if self.drive:
            info = await self.api.drive_info(self.drive)
            self.drive = str(info.get("drive", self.drive))
            if info["size"] < self.size:
                raise ToolError(
                    f"drive {self.drive} holds {info['size']} bytes, fewer than {self.args.file} ({self.size} bytes)"
                )
            return
        props = {
            "name": (self.args.name or os.path.basename(self.args.file.rstrip("/")) or "upload")[:MAX_NAME],
            "size": self.size,
        }
        if self.args.tier:
            props["tier"] = self.args.tier
        info = await self.api.json("POST", "/drives/create", props, idempotent=False)
        self.drive = str(info["drive"])
        # A new drive reads as zeros everywhere, so zero chunks need not travel.
        self.skip_zeros = True
        print(f"Created drive {self.drive} of size {self.size}", flush=True)

    async def send(self, offset: int, length: int) -> None:
        data = await asyncio.to_thread(os.pread, self.fd, length, offset)
        if len(data) != length:
            raise ToolError(f"{self.args.file} ended at {offset + len(data)} while being read")
        if not (self.skip_zeros and is_zero(data)):
            body, headers = await asyncio.to_thread(encode, data, self.args.gzip)
            await self.api.call(
                "POST",
                f"/drives/{self.drive}/write/{offset}",
                body=body,
                headers=headers,
                what=f"chunk at offset {offset}",
            )
        self.progress.advance(length)


async def upload(args: argparse.Namespace, endpoint: Endpoint, interrupt: cli.Interrupt) -> int:
    try:
        fd = os.open(args.file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        cli.say(PROGRAM, f"cannot open {args.file}: {e.strerror}")
        return cli.EXIT_USAGE
    try:
        # Seeking to the end measures block devices too, where st_size says 0.
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            cli.say(PROGRAM, f"{args.file} is empty: a drive needs at least one byte")
            return cli.EXIT_USAGE
        if args.offset > size:
            cli.say(PROGRAM, f"offset {args.offset} is past the end of {args.file} ({size} bytes)")
            return cli.EXIT_USAGE
        progress = Progress(size, done=args.offset, label="upload", enabled=False if args.quiet else None)
        warn = (lambda message: None) if args.quiet else (lambda message: progress.note(f"{PROGRAM}: {message}"))
        policy = RetryPolicy(retries=args.retries, base_delay=args.retry_delay)
        async with Api(endpoint, parallel=args.parallel, timeout=args.timeout, policy=policy, warn=warn) as api:
            return await run(args, api, fd, size, progress, interrupt)
    finally:
        os.close(fd)


async def run(
    args: argparse.Namespace, api: Api, fd: int, size: int, progress: Progress, interrupt: cli.Interrupt
) -> int:
    job = Upload(args, api, fd, size, progress)
    try:
        await job.open_drive()
    except ToolError as e:
        progress.close()
        cli.say(PROGRAM, e.message)
        return cli.EXIT_FAILED
    except asyncio.CancelledError:
        if interrupt.signal is None:
            raise
        cli.say(PROGRAM, f"interrupted by {interrupt.name} before any chunk was sent")
        return interrupt.exit_code
    transfer: Transfer[None] = Transfer(args.offset, size, args.chunk, parallel=args.parallel)
    failed = await cli.run_transfer(
        PROGRAM,
        "upload",
        lambda: transfer.run(job.send),
        progress,
        interrupt,
        lambda: transfer.resume,
        lambda offset: restart(args, job.drive, offset, job.skip_zeros),
    )
    if failed is not None:
        return failed
    if args.verify:
        return await check_drive(args, api, job.drive, fd, size)
    return cli.EXIT_OK


async def check_drive(args: argparse.Namespace, api: Api, drive: str, fd: int, size: int) -> int:
    progress = Progress(size, label="verify", enabled=False if args.quiet else None)
    try:
        verdict = await verify(api, drive, fd, size, chunk=args.chunk, parallel=args.parallel, progress=progress)
    except ToolError as e:
        progress.close()
        cli.say(PROGRAM, f"verify failed: {e.message}")
        return cli.EXIT_FAILED
    progress.close()
    if verdict.mismatches:
        cli.say(PROGRAM, describe(verdict))
        words = [*cli.transfer_words(args), "-d", drive, "-o", str(verdict.mismatches[0][0])]
        print(f"Restart with: {cli.command_line(PROGRAM, words, [args.file])}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(describe(verdict), flush=True)
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check(args)
        endpoint = Endpoint.from_env(os.environ)
    except SetupError as e:
        cli.say(PROGRAM, e.message)
        return cli.EXIT_USAGE
    return cli.run(lambda interrupt: upload(args, endpoint, interrupt))
