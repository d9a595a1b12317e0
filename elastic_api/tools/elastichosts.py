"""elastichosts: one API call, its arguments joined with / into the path under $EHURI."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import aiohttp

from elastic_api.tools import cli
from elastic_api.tools.api import Api, Endpoint, Reply, RetryPolicy, SetupError, reason

PROGRAM = "elastichosts"
# One call, interactive or scripted: no retries (a repeated create would make two objects), and a
# generous limit because `read` and `write` may move large bodies.
TIMEOUT = 3600.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Send one ElasticHosts API command: CMD and the ARGs, joined with /, are the path "
        "under $EHURI (e.g. `elastichosts drives list`, `elastichosts drives UUID info`). "
        "Every command is sent as POST, like the original tool.",
        epilog=cli.ENVIRONMENT_HELP,
    )
    body = p.add_mutually_exclusive_group()
    body.add_argument("-c", dest="stdin", action="store_true", help="send standard input as the request body")
    body.add_argument("-f", dest="file", metavar="FILE", help="send FILE as the request body")
    p.add_argument("-j", dest="json", action="store_true", help="JSON in and out instead of text")
    p.add_argument("-v", dest="verbose", action="store_true", help="show the request and response headers on stderr")
    p.add_argument("command", metavar="CMD")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG")
    return p


def path_of(words: Sequence[str]) -> str:
    return "/".join(w.strip("/") for w in words if w.strip("/"))


def request_headers(args: argparse.Namespace, has_body: bool) -> dict[str, str]:
    headers = {}
    if args.json:
        headers["Accept"] = "application/json"
    if has_body:
        headers["Content-Type"] = "application/json" if args.json else "application/octet-stream"
    return headers


def show_headers(reply: Reply) -> None:
    """Like `curl -v`, minus the secret: people paste this output into bug reports."""
    url = urlsplit(reply.url)
    lines = [f"> {reply.method} {url.path}{'?' + url.query if url.query else ''} HTTP/1.1"]
    for key, value in reply.request_headers.items():
        lines.append(f"> {key}: {'Basic <hidden>' if key.lower() == 'authorization' else value}")
    lines += [">", f"< {reply.version} {reply.status} {reply.reason}".rstrip()]
    lines += [f"< {key}: {value}" for key, value in reply.headers.items()]
    lines.append("<")
    print("\n".join(lines), file=sys.stderr, flush=True)


def read_body(args: argparse.Namespace) -> bytes | None:
    try:
        if args.stdin:
            return sys.stdin.buffer.read()
        if args.file is not None:
            with open(args.file, "rb") as f:
                return f.read()
    except OSError as e:
        raise SetupError(f"cannot read {args.file or 'standard input'}: {e.strerror}") from None
    return None


async def call(args: argparse.Namespace, endpoint: Endpoint, body: bytes | None) -> int:
    path = path_of([args.command, *args.args])
    async with Api(endpoint, timeout=TIMEOUT, policy=RetryPolicy(retries=0)) as api:
        try:
            reply = await api.once(
                "POST", path, body if body is not None else b"", request_headers(args, body is not None)
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            cli.say(PROGRAM, f"cannot reach {endpoint.base}: {reason(e)}")
            return cli.EXIT_FAILED
    if args.verbose:
        show_headers(reply)
    if not reply.ok:
        cli.say(PROGRAM, reply.error().message)
        return cli.EXIT_FAILED
    sys.stdout.buffer.write(reply.body)
    sys.stdout.buffer.flush()
    return cli.EXIT_OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        endpoint = Endpoint.from_env(os.environ if environ is None else environ)
        body = read_body(args)
    except SetupError as e:
        cli.say(PROGRAM, e.message)
        return cli.EXIT_USAGE
    return cli.run(lambda interrupt: call(args, endpoint, body))
