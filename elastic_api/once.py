"""Files made once and never replaced (the master key, the installation ID), safe when several
processes or threads start at the same moment: each writes a temporary file of its own, and the
first `link` to the real name wins."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def create_once(path: Path, content: bytes, mode: int) -> bool:
    """Write `content` to `path` durably unless the file already exists: True when this call made
    it, False when another got there first (read theirs). OSError for any other failure."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A name no other process or thread making the file at the same moment uses.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.new")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        # link, not rename: the second of two makers must find the first's file, not replace it.
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


__all__ = ["create_once"]
