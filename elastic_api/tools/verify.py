"""--verify: SHA-256 of a file's bytes against the drive's, segment by segment."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field

from elastic_api.tools.api import Api, ApiError, ToolError
from elastic_api.tools.chunks import Transfer
from elastic_api.tools.progress import Progress

# One checksum per segment: a mismatch is pinned to 64 MiB, and one request stays a few seconds of
# server disk time; it is also the largest read the server allows by default (the fallback).
SEGMENT = 64 * 1024 * 1024
# Local reads in pieces this big: the hash keeps up and memory stays flat.
READ_PIECE = 4 * 1024 * 1024
# What a server without the checksum command answers for it.
NO_CHECKSUM = frozenset({404, 405, 501})
SERVER, DOWNLOAD = "server-side checksum", "downloaded and hashed here (the server has no checksum command)"


@dataclass
class Verdict:
    """How the drive was checked, and the (offset, length) segments that differ."""

    method: str
    length: int
    mismatches: list[tuple[int, int]] = field(default_factory=list)


def local_sha256(fd: int, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    end = offset + length
    while offset < end:
        piece = os.pread(fd, min(READ_PIECE, end - offset), offset)
        if not piece:
            raise ToolError(f"the file ends before offset {offset}")
        digest.update(piece)
        offset += len(piece)
    return digest.hexdigest()


class Checker:
    """The drive's side: the server's checksum command, or reading its bytes back to hash them."""

    def __init__(self, api: Api, drive: str, chunk: int) -> None:
        self.api, self.drive, self.chunk = api, drive, chunk
        self.method = SERVER

    async def probe(self, offset: int, length: int) -> str:
        """The first segment's checksum, finding out on the way whether the server can compute it."""
        try:
            return await self.server(offset, length)
        except ApiError as e:
            if e.status not in NO_CHECKSUM:
                raise
        self.method = DOWNLOAD
        return await self.download(offset, length)

    async def remote(self, offset: int, length: int) -> str:
        return await (self.server if self.method == SERVER else self.download)(offset, length)

    async def server(self, offset: int, length: int) -> str:
        reply = await self.api.call(
            "GET",
            f"/drives/{self.drive}/checksum/{offset}/{length}",
            headers={"Accept": "application/json"},
            what=f"checksum of {length} bytes at offset {offset}",
        )
        answer = reply.json()
        digest = answer.get("sha256") if isinstance(answer, dict) else None
        if not isinstance(digest, str) or len(digest) != 64:
            raise ToolError(f"checksum at offset {offset}: the server's answer has no sha256")
        if isinstance(answer.get("size"), int) and answer["size"] != length:
            raise ToolError(f"checksum at offset {offset}: the server hashed {answer['size']} bytes, not {length}")
        return digest.lower()

    async def download(self, offset: int, length: int) -> str:
        digest = hashlib.sha256()
        end = offset + length
        while offset < end:
            size = min(self.chunk, end - offset)
            reply = await self.api.call(
                "GET", f"/drives/{self.drive}/read/{offset}/{size}", length=size, what=f"verify read at offset {offset}"
            )
            # hashlib lets go of the GIL on big buffers: hashing off the loop overlaps with the network.
            await asyncio.to_thread(digest.update, reply.body)
            offset += size
        return digest.hexdigest()


async def verify(
    api: Api, drive: str, fd: int, length: int, *, chunk: int, parallel: int, progress: Progress
) -> Verdict:
    """Compare bytes [0, length) of the file open as `fd` with the drive's."""
    checker = Checker(api, drive, chunk)
    verdict = Verdict(SERVER, length)

    async def segment(offset: int, size: int) -> None:
        # The first segment goes alone and probes; the rest follow the method it found.
        remote = checker.probe if offset == 0 else checker.remote
        ours, theirs = await asyncio.gather(asyncio.to_thread(local_sha256, fd, offset, size), remote(offset, size))
        if ours != theirs:
            verdict.mismatches.append((offset, size))
        progress.advance(size)

    if length == 0:
        return verdict
    first = min(SEGMENT, length)
    await segment(0, first)
    rest: Transfer[None] = Transfer(first, length, SEGMENT, parallel=parallel)
    await rest.run(segment)
    verdict.method = checker.method
    verdict.mismatches.sort()
    return verdict


def describe(verdict: Verdict) -> str:
    if not verdict.mismatches:
        return f"Verified {verdict.length} bytes: SHA-256 matches ({verdict.method})"
    ranges = ", ".join(f"{o}-{o + n - 1}" for o, n in verdict.mismatches[:8])
    more = f" and {len(verdict.mismatches) - 8} more" if len(verdict.mismatches) > 8 else ""
    return f"Verify FAILED: the drive differs from the file in bytes {ranges}{more} ({verdict.method})"
