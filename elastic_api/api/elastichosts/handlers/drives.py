"""/drives: list, info, create, set, destroy, read, write, image, and the standard images."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import TypeVar

from aiohttp import web

from elastic_api.api.elastichosts.call import Call
from elastic_api.api.elastichosts.codec import drive as codec
from elastic_api.api.elastichosts.codec.drive import checksum_info, to_info
from elastic_api.api.elastichosts.codec.image import to_info as image_info
from elastic_api.api.elastichosts.negotiate import Described, NoContent, Properties, PropertiesList, ValuesList
from elastic_api.errors import ClientGoneError, UsageError
from elastic_api.http.audit import created
from elastic_api.http.transfer import BodyFollows, begin, send_file
from elastic_api.model.drive import Drive, EncryptedRawError
from elastic_api.model.units import parse_size


async def list_drives(call: Call) -> ValuesList:
    drives = await call.services.drives.visible_ids(call.user, call.page())
    return ValuesList([{"drive": d} for d in drives], ("drive",))


async def info_drives(call: Call) -> PropertiesList:
    drives = await call.services.drives.visible(call.user, call.page())
    return PropertiesList([to_info(d) for d in drives])


async def info(call: Call) -> Described:
    return Described(await call.services.drives.get(call.user, call.arg("drive")), to_info)


async def create(call: Call) -> Properties:
    spec = codec.parse_spec(await call.props(), max_size=call.config.max_drive_size)
    try:
        drive = await call.services.drives.create(call.user, spec)
    except EncryptedRawError:
        # Said in this dialect's keys: the service cannot name them.
        raise UsageError(codec.ENCRYPTED_RAW) from None
    created(call.request, drive.drive)
    return Properties(to_info(drive))


async def set_(call: Call) -> Properties:
    changes = codec.parse_changes(await call.props(), max_size=call.config.max_drive_size)
    return Properties(to_info(await call.services.drives.set(call.user, call.arg("drive"), changes)))


async def _number(text: str, what: str, visible: Callable[[], Awaitable[Drive]]) -> int:
    """A byte count from the path. A drive the user cannot see (or, for a write, does not own)
    answers 404 whatever its offset and size say, as it always has: when the text is bad,
    `visible()` is asked before the error is raised, so a good request costs no extra lookup."""
    try:
        return parse_size(text, what)
    except UsageError:
        await visible()
        raise


async def destroy(call: Call) -> NoContent:
    await call.services.drives.destroy(call.user, call.arg("drive"))
    return NoContent()


def _gzip_accepted(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


T = TypeVar("T")
# Seconds between looks at whether a write's client is still connected: a client that left is
# noticed within one, for the cost of one timer a second per write in flight.
CLIENT_CHECK = 1.0


# An interim answer every HTTP/1.1 client must skip (RFC 9110 §15.2), sent to tell a client that
# only shut down its sending side from one that closed its socket.
_PROBE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    if getattr(transport.get_protocol(), "client_done", False):
        # The client's end of the stream came in while the write is still at work. A client that
        # half-closed waits for its answer; one that closed its socket is gone, and its kernel
        # answers the probe with a reset, which the next look finds as a closing transport.
        transport.write(_PROBE)
    return False


async def _while_connected(request: web.Request, work: Awaitable[T]) -> T:
    """`work`, cancelled if the client closes its connection first. aiohttp does not cancel a
    handler whose client left, so a write stuck on its storage would keep its upload slot (and
    its drive busy) for nobody; cancelled, it gives both back. The work runs in the handler's
    own task, from its first step, exactly as when awaited directly; a watcher cancels it."""
    handler = asyncio.current_task()
    assert handler is not None
    loop = asyncio.get_running_loop()
    gone = False
    timer: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal gone, timer
        if _client_gone(request):
            gone, timer = True, None
            handler.cancel()
        else:
            timer = loop.call_later(CLIENT_CHECK, check)

    timer = loop.call_later(CLIENT_CHECK, check)
    try:
        return await work
    except asyncio.CancelledError:
        if gone and handler.uncancel() == 0:
            raise ClientGoneError("the client closed the connection before the write finished") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()


async def write(call: Call) -> NoContent:
    encoding = call.request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise UsageError(f"unsupported Content-Encoding: {encoding[:20]} (send raw bytes or gzip)")
    drives, drive = call.services.drives, call.arg("drive")
    offset = await _number(
        call.request.match_info.get("offset", "0"), "offset", partial(drives.owned, call.user, drive)
    )
    await _while_connected(
        call.request,
        drives.write(
            call.user,
            drive,
            offset,
            call.body(),
            gzip=encoding in ("gzip", "x-gzip"),
            length=call.request.content_length,
        ),
    )
    return NoContent()


async def read(call: Call) -> web.StreamResponse:
    drives = call.services.drives
    drive = call.arg("drive")
    visible = partial(drives.get, call.user, drive)
    offset = await _number(call.arg("offset"), "offset", visible)
    size = await _number(call.arg("size"), "size", visible)
    plan = await drives.read(call.user, drive, offset, size)
    response = BodyFollows(headers={"Content-Type": "application/octet-stream"})
    compressor = None
    if _gzip_accepted(call.request.headers.get("Accept-Encoding", "")):
        # Level 1: most of gzip's saving on disk images at a fraction of the CPU of the default.
        compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response.content_length = plan.length
    if call.request.method == "HEAD":
        # The head a GET would have, and no body: bytes after it would be read as the next answer.
        await begin(call.request, response)
        return response
    with drives.reading(plan) as sent:
        await begin(call.request, response)
        if compressor is None and plan.file is not None:
            # Zero-copy: the kernel moves the bytes from the page cache to the socket.
            await send_file(call.request, drives.opener(plan), plan.offset, plan.length)
            sent.bytes = plan.length
        else:
            async with aclosing(drives.chunks(plan)) as chunks:
                async for chunk in chunks:
                    await response.write(await asyncio.to_thread(compressor.compress, chunk) if compressor else chunk)
                    sent.bytes += len(chunk)
            if compressor is not None:
                await response.write(compressor.flush())
    await response.write_eof()
    return response


async def checksum(call: Call) -> Properties:
    drives, drive = call.services.drives, call.arg("drive")
    offset_text, size_text = call.request.match_info.get("offset"), call.request.match_info.get("size")
    visible = partial(drives.get, call.user, drive)
    offset = None if offset_text is None else await _number(offset_text, "offset", visible)
    size = None if size_text is None else await _number(size_text, "size", visible)
    return Properties(checksum_info(await drives.checksum(call.user, drive, offset, size)))


async def image(call: Call) -> NoContent:
    await call.services.imaging.image(
        call.user, call.arg("drive"), call.arg("source"), call.request.match_info.get("conversion", "")
    )
    return NoContent()


async def list_standard(call: Call) -> ValuesList:
    images = await call.services.imaging.standard(call.page())
    return ValuesList([image_info(i) for i in images], ("drive",))


async def info_standard(call: Call) -> PropertiesList:
    return PropertiesList([image_info(i) for i in await call.services.imaging.standard(call.page())])
