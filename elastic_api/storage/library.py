"""The standard image library: read-only gzip files of raw guest bytes, one per image UUID."""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path

from elastic_api.errors import FailedError, MissingError, UsageError
from elastic_api.model.ids import is_id
from elastic_api.storage.base import ImageFile
from elastic_api.storage.aio import in_thread
from elastic_api.storage.fileops import NO_ROOM, no_room, replace_synced, unlink_quietly
from elastic_api.storage.gzipstream import Gunzip

# Standard images are stored gzipped with their uncompressed size in a gzip FEXTRA subfield (RFC 1952
# §2.3.1.1), since the trailer's ISIZE is modulo 4 GiB. Readers that do not know it skip it.
IMAGE_SIZE_ID = b"ES"
IMAGE_HEADER = struct.Struct("<2sBBIBBH2sHQ")  # magic CM FLG MTIME XFL OS XLEN | SI LEN size
GZIP_FEXTRA = 0x04
# A standard image being imported (`.UUID.gz.tmp`), left behind when its import dies.
IMAGE_TEMPORARIES = ("gz.tmp",)


class ImageLibrary:
    """Standard images as `images_dir/UUID.gz`."""

    def __init__(self, images_dir: Path, *, chunk: int) -> None:
        self.images_dir = images_dir
        self._chunk = chunk

    def path(self, image: str) -> Path:
        if not is_id(image):
            raise UsageError("not an image of this library")
        return self.images_dir / f"{image}.gz"

    async def import_image(self, image: str, source: Path) -> ImageFile:
        path = self.path(image)
        size = await in_thread(self._compress, Path(source), path)
        return ImageFile(image, path, size)

    async def image_file(self, image: str) -> ImageFile:
        """A stored standard image; MissingError when there is none."""
        path = self.path(image)
        return ImageFile(image, path, await in_thread(self._size, path))

    async def remove_image(self, image: str) -> None:
        await in_thread(unlink_quietly, self.path(image))

    def sweep_temporaries(self) -> list[str]:
        """Blocking: remove imports that died half-way; a live import (`elastic-api image add`
        runs beside the server) keeps its temporary file locked and is left alone."""
        removed = []
        for name in os.listdir(self.images_dir):
            stem, dot, suffix = name[1:].partition(".")
            if not name.startswith(".") or not dot or suffix not in IMAGE_TEMPORARIES or not is_id(stem):
                continue
            path = self.images_dir / name
            if locked(path):
                continue
            unlink_quietly(path)
            removed.append(name)
        return removed

    def _compress(self, source: Path, path: Path) -> int:
        temp = path.with_name(f".{path.name}.tmp")
        try:
            reader = open(source, "rb")  # noqa: SIM115 - closed below, across the try
        except OSError:
            raise FailedError("the image file cannot be read") from None
        try:
            with reader, open(temp, "wb") as out:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)  # tells a server's start-up sweep it is in use
                # Header first with a size placeholder, patched once the size is known.
                out.write(IMAGE_HEADER.pack(b"\x1f\x8b", 8, GZIP_FEXTRA, 0, 0, 255, 12, IMAGE_SIZE_ID, 8, 0))
                deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
                crc = size = 0
                while True:
                    try:
                        block = reader.read(self._chunk)
                    except OSError:
                        raise FailedError("the image file cannot be read") from None
                    if not block:
                        break
                    crc = zlib.crc32(block, crc)
                    size += len(block)
                    out.write(deflater.compress(block))
                out.write(deflater.flush())
                out.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
                out.seek(IMAGE_HEADER.size - 8)
                out.write(struct.pack("<Q", size))
                out.flush()
                os.fsync(out.fileno())
            replace_synced(temp, path)
        except OSError as e:
            raise (no_room() if e.errno in NO_ROOM else FailedError("the image could not be stored")) from None
        finally:
            unlink_quietly(temp)
        return size

    def _size(self, path: Path) -> int:
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise MissingError("no such image") from None
        except OSError:
            raise FailedError("the image cannot be read") from None
        with file:
            head = file.read(IMAGE_HEADER.size)
            if len(head) == IMAGE_HEADER.size:
                magic, _, flags, _, _, _, xlen, sub, sublen, size = IMAGE_HEADER.unpack(head)
                if magic == b"\x1f\x8b" and flags & GZIP_FEXTRA and xlen == 12 and sub == IMAGE_SIZE_ID and sublen == 8:
                    return int(size)
            # A gzip file put there by other means: count its bytes the slow way.
            file.seek(0)
            inflater = Gunzip()
            size = 0
            while block := file.read(self._chunk):
                for out in inflater.inflate(block, self._chunk):
                    size += len(out)
            inflater.finish()
            return size


def locked(path: Path) -> bool:
    """Whether another open file description holds a lock on path (a live import's temporary)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the description drops our lock
    return False


__all__ = ["ImageLibrary", "locked"]
