"""Cloud-init NoCloud seeds: one ISO9660 volume labelled `cidata` per server, holding its
`meta-data` and `user-data` (model/cloudinit.py renders them), attached to its guest as a
read-only cdrom.

Where a seed lives: `<data_dir>/seeds/<server UUID>.iso` (Config.seed_dir). The directory is
0700 and each seed 0600, owned by the API's user: the same as the drives in `<data_dir>/pool`,
so QEMU (run as root here, see scripts/setup.sh; or relabelled by libvirt's dynamic ownership
like the drives elsewhere) reads it as it reads them, and no other local user can read the
password hash inside. Hosts that share the pool share `data_dir`, so every host reaches it.

A seed is built with Debian's `xorriso` (its mkisofs emulation, Joliet and Rock Ridge so the
guest sees the lower-case names cloud-init looks for) from an argument list, never a shell;
its inputs and output are written in a private temporary directory in seed_dir and renamed
into place, so a seed is whole or absent, and rebuilding it (each start) never shows a guest
half of one. File work runs in threads, xorriso as an asyncio subprocess: never on the loop."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

from elastic_api.errors import FailedError
from elastic_api.model.ids import is_id
from elastic_api.storage.aio import in_thread
from elastic_api.storage.fileops import replace_synced, unlink_quietly

log = logging.getLogger(__name__)

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud source looks for
SUFFIX = ".iso"


class Seeds:
    def __init__(self, directory: Path, xorriso: str = "xorriso") -> None:
        self.directory = Path(os.path.abspath(directory))
        self.xorriso = xorriso

    def path(self, server: str) -> Path:
        if not is_id(server):
            raise ValueError(f"a seed is named by its server's UUID, not {server!r}")
        return self.directory / f"{server}{SUFFIX}"

    async def write(self, server: str, meta_data: str, user_data: str) -> Path:
        """Build (or rebuild) the server's seed; its path. FailedError when xorriso fails."""
        target = self.path(server)
        work = Path(await in_thread(self._prepare, server, meta_data, user_data))
        try:
            iso = work / "seed.iso"
            await self._xorriso(
                "-as", "mkisofs", "-quiet", "-output", str(iso), "-volid", VOLUME_LABEL,
                "-joliet", "-rock", str(work / "user-data"), str(work / "meta-data"),
            )  # fmt: skip
            await in_thread(self._install, iso, target)
        finally:
            await in_thread(shutil.rmtree, work, True)
        return target

    def _prepare(self, server: str, meta_data: str, user_data: str) -> str:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".{server}.", dir=self.directory)  # 0700
        for name, text in (("meta-data", meta_data), ("user-data", user_data)):
            fd = os.open(os.path.join(work, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        return work

    @staticmethod
    def _install(iso: Path, target: Path) -> None:
        os.chmod(iso, 0o600)
        with open(iso, "rb") as f:
            os.fsync(f.fileno())
        replace_synced(iso, target)

    async def _xorriso(self, *args: str) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                self.xorriso,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError:
            raise FailedError("the cloud-init seed could not be built: xorriso could not be run") from None
        communicate = asyncio.ensure_future(process.communicate())
        try:
            _, err = await asyncio.shield(communicate)
        except asyncio.CancelledError:
            await asyncio.wait([communicate])  # its temporary directory goes after it has finished
            raise
        if process.returncode:
            log.error("xorriso failed: %s", err.decode(errors="replace").strip()[-2000:])
            raise FailedError("the cloud-init seed could not be built")

    async def remove(self, server: str) -> None:
        """Remove the server's seed; one already gone (or never made) is fine."""
        await in_thread(unlink_quietly, self.path(server))

    async def exists(self, server: str) -> bool:
        return await in_thread(self.path(server).exists)

    async def servers(self) -> list[str]:
        """The servers that have a seed (the UUIDs of the seeds in the directory)."""
        return await in_thread(self._list)

    def _list(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and is_id(n[: -len(SUFFIX)]))


__all__ = ["SUFFIX", "VOLUME_LABEL", "Seeds"]
