"""Drive snapshots and templates, through qemu-img.

Snapshots are **internal qcow2 snapshots** (`qemu-img snapshot -c/-a/-d`), not an overlay chain:
an ECS boot drive is already a qcow2 file (plain, or with LUKS inside) whose backing file is an
immutable base (storage/bases.py), and its path is what the server's domain names. An overlay
chain would change that path at each snapshot (the domain redefined, the chain's files
tracked and merged on delete); an internal snapshot changes nothing outside the file: it
freezes the drive's current cluster map (clusters copied on the next write to them), applying one
points the drive back at it, deleting one frees what only it used. Encrypted clusters stay
encrypted (a snapshot copies cluster maps, never bytes), and qemu-img opens the LUKS drive with
its passphrase from an inherited pipe, never a file or the command line.

The file must not be open elsewhere while its snapshot table changes: qemu-img takes the image's
write lock, so a running guest's QEMU (or an export of ours, stopped first) makes it refuse.
The services only ask this of a stopped server (ECS.md: snapshots of a running server are 409).

A template is the drive's guest bytes at one point (now, or a snapshot's) flattened into a raw
file under the bases directory (`POOL/bases/UUID.raw`, read-only, sparse): the same shape as a
standard image's base, so drives made from it are copy-on-write overlays and a template in use
cannot be removed (Bases.remove). Reading a snapshot's bytes needs no lock: a snapshot's
clusters are never written in place while it exists (a write to a shared cluster copies it), so
a template may be read from the snapshot of a running guest's drive (`-U`, force-share).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from elastic_api.errors import FailedError, MissingError
from elastic_api.storage.aio import in_thread
from elastic_api.storage.base import Volume
from elastic_api.storage.bases import Bases
from elastic_api.storage.exports import SECRET_ID, Exports, qemu_escape
from elastic_api.storage.fileops import replace_synced, sync_dir, unlink_quietly
from elastic_api.storage.qemu_img import QemuImg

OPS = {"create": "-c", "apply": "-a", "delete": "-d"}


def image_args(volume: Volume, path: Path) -> list[str]:
    """How qemu-img opens the drive's file: its format named, never probed (`qemu-img snapshot`
    takes no -f), with the LUKS key for an encrypted one (object `key`, from QemuImg's pipe)."""
    file = f"file.driver=file,file.filename={qemu_escape(str(path))}"
    if volume.encrypted and volume.format == "raw":
        return ["--image-opts", f"driver=luks,key-secret={SECRET_ID},{file}"]
    if volume.encrypted:
        return ["--image-opts", f"driver=qcow2,encrypt.format=luks,encrypt.key-secret={SECRET_ID},{file}"]
    return ["--image-opts", f"driver={volume.format},{file}"]


class DriveSnapshots:
    def __init__(self, exports: Exports, qemu_img: QemuImg, bases: Bases) -> None:
        self._exports = exports
        self._qemu_img = qemu_img
        self._bases = bases

    async def snapshot(self, volume: Volume, path: Path, op: str, tag: str) -> None:
        """Create, apply or delete the snapshot `tag` of a qcow2 volume (see the module's words)."""
        if volume.format != "qcow2":
            raise FailedError("only a qcow2 drive holds snapshots")
        if not await in_thread(path.exists):
            raise MissingError(f"no such drive: {volume.drive}")
        # An export of ours holds the write lock: let it finish and go (it restarts on demand).
        await self._exports.stop(volume.drive, wait=True)
        if op == "create" and tag in await self._tags(volume, path):
            # Made already (a re-run after a crash before its row said so): made anew, never
            # twice under one name (qcow2 would keep both, and apply the first).
            await self._qemu_img("snapshot", "-q", OPS["delete"], tag, *image_args(volume, path), secret=volume.secret)
        await self._qemu_img("snapshot", "-q", OPS[op], tag, *image_args(volume, path), secret=volume.secret)

    async def _tags(self, volume: Volume, path: Path) -> set[str]:
        """The names of the snapshots in the volume's file (from qemu-img's JSON, no guessing)."""
        out = await self._qemu_img.output("info", "--output=json", *image_args(volume, path), secret=volume.secret)
        try:
            info = json.loads(out)
            return {str(s["name"]) for s in info.get("snapshots", [])}
        except (ValueError, TypeError, KeyError):
            raise FailedError("qemu-img info printed no snapshot list") from None

    async def make_template(self, volume: Volume, path: Path, image: str, tag: str | None) -> int:
        """The volume's bytes (now, or at snapshot `tag`) as the read-only base of image `image`;
        returns its size. A failure leaves nothing behind."""
        base = self._bases.path(image)
        temp = base.with_name(f".{base.name}.tmp")  # swept at start-up if this process dies
        await in_thread(self._bases.dir.mkdir, 0o700, False, True)
        if tag is None:
            await self._exports.stop(volume.drive, wait=True)
        args = ["convert", "-q"]
        if tag is not None:
            args += ["-U", "-l", f"snapshot.name={tag}"]
        try:
            await self._qemu_img(*args, *image_args(volume, path), "-O", "raw", str(temp), secret=volume.secret)
            size = await in_thread(_seal, temp, base)
        finally:
            await in_thread(unlink_quietly, temp)
        return size

    async def remove_template(self, image: str) -> None:
        """Remove a template's base; BusyError, nothing removed, while a drive overlays it."""
        await in_thread(self._bases.remove, image)


def _seal(temp: Path, base: Path) -> int:
    """Blocking: the new base read-only, synced, then under its name."""
    fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o400)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    replace_synced(temp, base)
    sync_dir(base.parent)
    return size


__all__ = ["DriveSnapshots", "image_args"]
