"""qemu-img as a subprocess: an argument list, never a shell; a volume's passphrase from an
inherited pipe, never a file or the command line."""

from __future__ import annotations

import asyncio
import logging
import os

from elastic_api.errors import FailedError
from elastic_api.storage.aio import in_thread
from elastic_api.storage.exports import secret_object, secret_pipe
from elastic_api.storage.fileops import no_room

# qemu-img calibrates PBKDF2 by timing a few milliseconds of it on the thread's CPU clock (when it
# writes a LUKS header; ours are built by storage/qcow2_luks.py, but legacy raw LUKS volumes are
# still made by qemu-img in tests). Where that clock advances only at scheduler ticks (this VM's
# kernel: two probes in three read 0 ms) it refuses at once ("Unable to get accurate CPU usage");
# a refused attempt costs milliseconds, and 40 refusals in a row are less likely than one in ten
# million.
QEMU_IMG_TRIES = 40

log = logging.getLogger(__name__)


class QemuImg:
    """Runs one qemu-img command at a time per call; FullError when the pool ran out of room,
    FailedError (details logged) for any other failure."""

    def __init__(self, binary: str = "qemu-img") -> None:
        self.binary = binary

    async def __call__(self, *args: str, secret: bytes | None = None) -> None:
        """qemu-img with args; with a secret, the volume's passphrase is object `key`, read from
        an inherited pipe (after the subcommand, where qemu-img takes --object)."""
        await self.output(*args, secret=secret)

    async def output(self, *args: str, secret: bytes | None = None) -> bytes:
        """As a call, returning what qemu-img printed on its standard output."""
        for attempt in range(1, QEMU_IMG_TRIES + 1):
            returncode, out, err = await self._once(args, secret)
            if not returncode or b"accurate CPU usage" not in err or attempt == QEMU_IMG_TRIES:
                break
        if returncode:
            if b"No space left" in err or b"quota exceeded" in err:
                raise no_room()
            log.error("qemu-img %s failed: %s", args[0], err.decode(errors="replace").strip())
            raise FailedError(f"qemu-img {args[0]} failed")
        return out

    async def _once(self, args: tuple[str, ...], secret: bytes | None) -> tuple[int | None, bytes, bytes]:
        fd = await in_thread(secret_pipe, secret) if secret is not None else None
        try:
            command = [self.binary, args[0]]
            if fd is not None:
                command += ["--object", secret_object(fd)]
            command += args[1:]
            try:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    pass_fds=() if fd is None else (fd,),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError:
                raise FailedError("qemu-img could not be run") from None
        finally:
            if fd is not None:
                os.close(fd)  # the child has its own copy; the pipe holds the passphrase until read
        communicate = asyncio.ensure_future(process.communicate())
        try:
            # Shielded: qemu-img stopped half-way through a resize could leave a broken image.
            out, err = await asyncio.shield(communicate)
        except asyncio.CancelledError:
            await asyncio.wait([communicate])
            raise
        return process.returncode, out, err


__all__ = ["QEMU_IMG_TRIES", "QemuImg"]
