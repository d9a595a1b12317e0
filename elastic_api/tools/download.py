"""elastichosts-download: a drive into a file (sparse) or block device, in chunks, resumable."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from collections.abc import Sequence

from elastic_api.tools import cli
from elastic_api.tools.api import Api, Endpoint, RetryPolicy, SetupError, ToolError
from elastic_api.tools.chunks import ChunkFailed, Transfer, data_runs
from elastic_api.tools.progress import Progress
from elastic_api.tools.verify import describe, verify

PROGRAM = "elastichosts-download"
# Chunks fetched but not yet written, per chunk in flight: room for a slow one to finish while
# the others carry on, and a bound on the memory held for in-order writing.
WINDOW_PER_PARALLEL = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Download a drive into a file or block device, in chunks fetched in parallel, "
        "retried on transient failures; a file is written sparse and resumes from its size.",
        epilog=cli.ENVIRONMENT_HELP,
    )
    cli.add_transfer_options(p)
    p.add_argument(
        "-o",
        "--offset",
        type=cli.size_arg,
        default=None,
        metavar="OFFSET",
        help="start at this byte of the drive (default: the file's size, so a rerun resumes)",
    )
    p.add_argument(
        "--no-sparse", dest="sparse", action="store_false", help="write zeros out instead of leaving holes in the file"
    )
    p.add_argument("drive", metavar="DRIVE")
    p.add_argument("file", metavar="FILE|BLOCKDEV")
    return p


def restart(args: argparse.Namespace, offset: int) -> str:
    words = [*cli.transfer_words(args), "-o", str(offset)]
    if not args.sparse:
        words.append("--no-sparse")
    return cli.command_line(PROGRAM, words, [args.drive, args.file])


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Target:
    """The file or block device being written, and whether its unwritten bytes read as zeros."""

    def __init__(self, path: str, fd: int, sparse: bool) -> None:
        self.path, self.fd = path, fd
        mode = os.fstat(fd).st_mode
        self.regular = stat.S_ISREG(mode)
        if not (self.regular or stat.S_ISBLK(mode)):
            raise SetupError(f"{path} is not a regular file or a block device")
        self.size = os.lseek(fd, 0, os.SEEK_END)
        # A device keeps whatever it held before, so only a file may skip its zeros.
        self.sparse = sparse and self.regular

    def start_at(self, offset: int) -> None:
        """Cut a file back to `offset`, so everything after it is a hole that reads as zeros."""
        if self.regular and self.size > offset:
            os.ftruncate(self.fd, offset)
            self.size = offset

    def commit(self, offset: int, data: bytes) -> None:
        """Write a chunk; afterwards a file's size is exactly its end, so its size says where to resume."""
        if not self.sparse:
            write_all(self.fd, data, offset)
            return
        view = memoryview(data)
        end = offset
        for start, stop in data_runs(data):
            write_all(self.fd, view[start:stop], offset + start)
            end = offset + stop
        if end < offset + len(data):
            # The chunk ends in zeros: extend the file over them as a hole.
            os.ftruncate(self.fd, offset + len(data))


async def download(args: argparse.Namespace, endpoint: Endpoint, interrupt: cli.Interrupt) -> int:
    policy = RetryPolicy(retries=args.retries, base_delay=args.retry_delay)
    progress = Progress(0, label="download", enabled=False if args.quiet else None)
    warn = (lambda message: None) if args.quiet else (lambda message: progress.note(f"{PROGRAM}: {message}"))
    async with Api(endpoint, parallel=args.parallel, timeout=args.timeout, policy=policy, warn=warn) as api:
        try:
            size = (await api.drive_info(args.drive))["size"]
        except ToolError as e:
            cli.say(PROGRAM, e.message)
            return cli.EXIT_FAILED
        try:
            # Read-write, not write-only: --verify reads the file back.
            fd = os.open(args.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            cli.say(PROGRAM, f"cannot open {args.file}: {e.strerror}")
            return cli.EXIT_USAGE
        try:
            target = Target(args.file, fd, args.sparse)
            start = first_offset(args, target, size)
            progress.reset(size, start)
            return await run(args, api, target, start, size, progress, interrupt)
        except SetupError as e:
            cli.say(PROGRAM, e.message)
            return cli.EXIT_USAGE
        finally:
            os.close(fd)


def first_offset(args: argparse.Namespace, target: Target, size: int) -> int:
    if args.offset is not None:
        if args.offset > size:
            raise SetupError(f"offset {args.offset} is past the end of drive {args.drive} ({size} bytes)")
        return int(args.offset)
    if not target.regular:
        return 0
    if target.size > size:
        raise SetupError(
            f"{args.file} ({target.size} bytes) is larger than drive {args.drive} ({size} bytes), "
            "so it is not a partial download of it; give -o 0 to overwrite it"
        )
    return target.size


async def run(
    args: argparse.Namespace,
    api: Api,
    target: Target,
    start: int,
    size: int,
    progress: Progress,
    interrupt: cli.Interrupt,
) -> int:
    if not target.regular and target.size < size:
        raise SetupError(f"{args.file} holds {target.size} bytes, fewer than drive {args.drive} ({size} bytes)")
    target.start_at(start)
    accept = {"Accept-Encoding": "gzip" if args.gzip else "identity"}

    async def fetch(offset: int, length: int) -> bytes:
        reply = await api.call(
            "GET",
            f"/drives/{args.drive}/read/{offset}/{length}",
            headers=accept,
            length=length,
            what=f"chunk at offset {offset}",
        )
        progress.advance(length)
        return reply.body

    async def commit(offset: int, length: int, data: bytes) -> None:
        await asyncio.to_thread(target.commit, offset, data)

    transfer: Transfer[bytes] = Transfer(
        start, size, args.chunk, parallel=args.parallel, window=WINDOW_PER_PARALLEL * args.parallel
    )

    async def work() -> None:
        await transfer.run(fetch, commit)
        await asyncio.to_thread(os.fsync, target.fd)

    failed = await cli.run_transfer(
        PROGRAM,
        "download",
        work,
        progress,
        interrupt,
        lambda: transfer.resume,
        lambda offset: restart(args, offset),
        failures=(ChunkFailed, OSError),
    )
    if failed is not None:
        return failed
    if args.verify:
        return await check_file(args, api, target, size)
    return cli.EXIT_OK


async def check_file(args: argparse.Namespace, api: Api, target: Target, size: int) -> int:
    progress = Progress(size, label="verify", enabled=False if args.quiet else None)
    try:
        verdict = await verify(
            api, args.drive, target.fd, size, chunk=args.chunk, parallel=args.parallel, progress=progress
        )
    except ToolError as e:
        progress.close()
        cli.say(PROGRAM, f"verify failed: {e.message}")
        return cli.EXIT_FAILED
    progress.close()
    if verdict.mismatches:
        cli.say(PROGRAM, describe(verdict))
        print(f"Restart with: {restart(args, verdict.mismatches[0][0])}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(describe(verdict), flush=True)
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        endpoint = Endpoint.from_env(os.environ)
    except SetupError as e:
        cli.say(PROGRAM, e.message)
        return cli.EXIT_USAGE
    return cli.run(lambda interrupt: download(args, endpoint, interrupt))
