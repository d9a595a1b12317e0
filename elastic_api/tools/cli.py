"""What the tools share on the command line: sizes, transfer options, exit codes and signals."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from elastic_api.errors import UsageError
from elastic_api.model.units import parse_size
from elastic_api.tools.api import RetryPolicy
from elastic_api.tools.chunks import ChunkFailed
from elastic_api.tools.progress import Progress

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MiB = 1024 * 1024
# What the original tools and most clients send: big enough for throughput, small enough to retry cheaply.
DEFAULT_CHUNK = 4 * MiB
# Four chunks keep a long fat link busy while one waits for its answer; more mostly adds server load.
DEFAULT_PARALLEL = 4
# One chunk's request, body and answer; a 4 MiB chunk at 1 Mbit/s takes about 35 s.
DEFAULT_TIMEOUT = 300.0
ENVIRONMENT_HELP = "environment: EHURI (the API's base URI), EHAUTH (<user uuid>:<secret API key>)"


def size_arg(text: str) -> int:
    """Bytes with an optional k, M, G or T suffix (powers of 1024)."""
    try:
        return parse_size(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def chunk_arg(text: str) -> int:
    size = size_arg(text)
    if size <= 0:
        raise argparse.ArgumentTypeError("the chunk size must be at least one byte")
    return size


def count_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 64")
    return int(text)


def retries_arg(text: str) -> int:
    if not text.isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError("must be a whole number from 0 to 1000")
    return int(text)


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """Options upload and download share."""
    parser.add_argument(
        "-c",
        "--chunk",
        type=chunk_arg,
        default=DEFAULT_CHUNK,
        metavar="CHUNK",
        help="bytes per request, with k/M/G suffixes (default: 4M)",
    )
    parser.add_argument(
        "-p",
        "--parallel",
        type=count_arg,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"chunks in flight at once (default: {DEFAULT_PARALLEL})",
    )
    parser.add_argument(
        "-z",
        "--gzip",
        dest="gzip",
        action="store_true",
        default=True,
        help="gzip chunks on the wire (the default; kept for the original tools' -z)",
    )
    parser.add_argument(
        "--no-gzip",
        dest="gzip",
        action="store_false",
        help="send and receive chunks uncompressed (fast links, incompressible data)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="afterwards, compare SHA-256 checksums of the file and the drive's bytes"
    )
    parser.add_argument(
        "--retries",
        type=retries_arg,
        default=RetryPolicy.retries,
        metavar="N",
        help=f"tries again after a transient failure, with backoff (default: {RetryPolicy.retries})",
    )
    parser.add_argument(
        "--retry-delay",
        type=seconds_arg,
        default=RetryPolicy.base_delay,
        metavar="SECONDS",
        help=f"first backoff, doubled per retry up to {RetryPolicy.max_delay:.0f}s (default: {RetryPolicy.base_delay})",
    )
    parser.add_argument(
        "--timeout",
        type=seconds_arg,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give one request up after this long (default: {DEFAULT_TIMEOUT:.0f})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no retry messages, only errors")


def transfer_words(args: argparse.Namespace) -> list[str]:
    """The shared options of a restart command, repeated where they differ from the defaults."""
    words = ["-c", str(args.chunk), "-p", str(args.parallel)]
    if not args.gzip:
        words.append("--no-gzip")
    if args.verify:
        words.append("--verify")
    if args.retries != RetryPolicy.retries:
        words += ["--retries", str(args.retries)]
    if args.retry_delay != RetryPolicy.base_delay:
        words += ["--retry-delay", str(args.retry_delay)]
    if args.timeout != DEFAULT_TIMEOUT:
        words += ["--timeout", str(args.timeout)]
    if args.quiet:
        words.append("-q")
    return words


def command_line(program: str, words: Sequence[str], operands: Sequence[str]) -> str:
    """A shell command that runs `program` again; `--` guards operands that look like options."""
    guard = ["--"] if any(o.startswith("-") for o in operands) else []
    return shlex.join([sys.argv[0] or program, *words, *guard, *operands])


def say(program: str, message: str) -> None:
    print(f"{program}: {message}", file=sys.stderr, flush=True)


@dataclass
class Interrupt:
    """The signal that stopped the tool, if one did, so it can say how to resume."""

    signal: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or 0)


async def run_transfer(
    program: str,
    what: str,
    work: Callable[[], Awaitable[None]],
    progress: Progress,
    interrupt: Interrupt,
    resume: Callable[[], int],
    restart: Callable[[int], str],
    failures: tuple[type[Exception], ...] = (ChunkFailed,),
) -> int | None:
    """Run a transfer with its progress bar ticking. When it fails or a signal stops it, say so and
    print the command that resumes it, and return the exit code; None when it completed."""
    ticker = asyncio.ensure_future(progress.tick()) if progress.enabled else None
    try:
        await work()
    except failures as e:
        progress.close()
        say(program, f"{what} failed: {e.cause if isinstance(e, ChunkFailed) else e}")
        print(f"Restart with: {restart(resume())}", file=sys.stderr)
        return EXIT_FAILED
    except asyncio.CancelledError:
        if interrupt.signal is None:
            raise
        progress.close()
        say(program, f"interrupted by {interrupt.name} at offset {resume()}")
        print(f"Restart with: {restart(resume())}", file=sys.stderr)
        return interrupt.exit_code
    finally:
        if ticker is not None:
            ticker.cancel()
            with suppress(asyncio.CancelledError):
                await ticker
    progress.close()
    return None


def run(tool: Callable[[Interrupt], Awaitable[int]]) -> int:
    """Run a tool's coroutine; SIGINT and SIGTERM cancel it, and the tool sees which one did."""

    async def main() -> int:
        interrupt = Interrupt()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            interrupt.signal = interrupt.signal or signum
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await tool(interrupt)
        except asyncio.CancelledError:
            if interrupt.signal is None:
                raise
            return interrupt.exit_code

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing more and do not let Python complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
