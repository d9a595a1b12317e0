"""The storage interface the services use: volumes, standard image files, the Storage Protocol."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Format = Literal["raw", "qcow2"]
FORMATS: tuple[str, ...] = ("raw", "qcow2")
# Imaging conversions: copy as is, gzip the source's bytes into the target, or gunzip them.
Conversion = Literal["", "gzip", "gunzip"]
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass(frozen=True)
class Volume:
    """The storage identity of a drive: its UUID (the only thing a file name is built from),
    its volume format and its guest-visible size in bytes; for an encrypted drive, also its LUKS
    passphrase (never printed: repr leaves it out)."""

    drive: str
    format: str
    size: int
    secret: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def encrypted(self) -> bool:
        return self.secret is not None


@dataclass(frozen=True)
class ImageFile:
    """A standard image in the read-only library: a gzip file of raw guest bytes."""

    image: str
    path: Path
    size: int  # uncompressed bytes


@dataclass(frozen=True)
class BaseFile:
    """A user's template: a read-only base of raw guest bytes under the pool (storage/snapshots.py)."""

    image: str
    size: int


class Storage(Protocol):
    """What the service layer asks of the drive pool. Every method is safe to call from the
    event loop: blocking work runs in threads or subprocesses."""

    def path(self, volume: Volume) -> Path:
        """The volume's file, for libvirt to attach (an encrypted raw volume is a LUKS file)."""

    async def create(self, volume: Volume) -> None:
        """A new, empty (all zero) volume, sparse unless it is encrypted raw (LUKS over a hole
        would read as noise, so its bytes are written as encrypted zeros); FullError when the
        pool has no room."""

    async def destroy(self, volume: Volume) -> None:
        """Remove the volume's file; a missing file is not an error."""

    async def resize(self, volume: Volume, size: int) -> None:
        """Grow the guest-visible size; new bytes read as zeros."""

    async def write(
        self, volume: Volume, offset: int, body: AsyncIterator[bytes], *, gzip: bool, max_decompressed: int
    ) -> int:
        """Write a request body at offset (decompressing it first when gzip), returning the
        uncompressed byte count. All-zero blocks become holes. Nothing is written when the body
        would run past the volume's end (FullError), is malformed (UsageError), inflates past
        max_decompressed (TooLargeError) or the pool runs out of room (FullError)."""

    async def release(self, volume: Volume) -> None:
        """Let go of the volume (its qcow2 export, once in-flight users finish), so that another
        process, a guest's QEMU, can take its write lock."""

    def plain_file(self, volume: Volume) -> str | None:
        """The path of a file holding the guest's bytes at their own offsets (a plain raw volume), which a
        reader may send straight from the page cache; None when bytes need translating (qcow2,
        encrypted)."""

    def read(self, volume: Volume, offset: int, length: int) -> AsyncGenerator[bytes, None]:
        """The guest-visible bytes [offset, offset+length), in chunks; holes read as zeros."""

    async def copy(
        self, source: Volume | ImageFile | BaseFile, target: Volume, conversion: str, progress: Progress
    ) -> None:
        """Imaging: the source's bytes (gzipped or gunzipped on the way) into target from offset 0,
        converting between formats as needed; FullError when they do not fit. A standard image
        gunzipped into a drive, or a template (whatever the conversion), makes the drive a
        copy-on-write clone of the image's base."""

    async def snapshot(self, volume: Volume, op: str, tag: str) -> None:
        """Internal qcow2 snapshot `tag` of a volume not in use: op "create", "apply" or "delete";
        FailedError for a volume that is not qcow2 or is open elsewhere (a running guest)."""

    async def make_template(self, volume: Volume, image: str, tag: str | None) -> int:
        """The volume's guest bytes (now, or at snapshot `tag`) as image `image`'s read-only
        base; its size in bytes."""

    async def remove_template(self, image: str) -> None:
        """Remove a template's base; BusyError, nothing removed, while a drive overlays it."""

    async def import_image(self, image: str, source: Path) -> ImageFile:
        """Add a raw disk image file to the standard library, stored gzipped, with its base."""

    async def image_users(self, image: str) -> list[str]:
        """The drives whose volume is backed by the image's base (sorted UUIDs)."""

    async def remove_image(self, image: str) -> None:
        """Remove a standard image's files; BusyError, nothing removed, while a drive's volume is
        backed by its base. A missing image is not an error."""

    async def image_file(self, image: str) -> ImageFile:
        """A stored standard image; MissingError when its file is gone."""

    async def volumes(self) -> set[str]:
        """Drive UUIDs that have a file in the pool (to find orphans)."""

    async def sweep_temporaries(self) -> list[str]:
        """At start-up, before any use: remove the hidden temporary files that an operation
        killed half-way left behind (a qcow2 being made, an export's socket, an image import that
        is no longer running); the names removed."""

    async def close(self) -> None:
        """Stop whatever helpers (NBD exports) the pool started."""


__all__ = ["FORMATS", "BaseFile", "Conversion", "Format", "ImageFile", "Progress", "Storage", "Volume"]
