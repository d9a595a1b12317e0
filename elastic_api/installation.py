"""The installation ID: one UUID per data directory, naming every libvirt object this installation
makes, so that several installations can share one libvirtd without touching each other's objects."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from elastic_api.errors import ConfigError
from elastic_api.once import create_once
from elastic_api.model.ids import is_id, new_id

log = logging.getLogger(__name__)
FILE_NAME = "installation-id"
# The file holds one UUID and a newline; anything much longer is not one (and is not read whole).
MAX_FILE = 256


def path_of(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def load_or_create(data_dir: Path) -> str:
    """The installation ID kept in `<data_dir>/installation-id`, made on the first start. A file
    that exists but does not hold a UUID is a ConfigError, never replaced: a new ID would disown
    every guest, network and secret the installation made (and its start-up would then leave
    them running unmanaged)."""
    path = path_of(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _create(path)
    except OSError as e:
        raise ConfigError(f"installation ID file {path} cannot be read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"installation ID file {path} is not a regular file")
        text = os.read(fd, MAX_FILE)
    except OSError as e:
        raise ConfigError(f"installation ID file {path} cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
    installation = text.decode("ascii", "replace").strip()
    if not is_id(installation):
        raise ConfigError(
            f"installation ID file {path} does not hold an installation ID (one lower-case UUID); "
            "restore it from a backup: the libvirt objects this installation made carry that ID"
        )
    return installation


def _create(path: Path) -> str:
    installation = new_id()
    try:
        made = create_once(path, installation.encode() + b"\n", 0o644)
    except OSError as e:
        raise ConfigError(f"installation ID file {path} cannot be created: {e.strerror}") from None
    if not made:
        return load_or_create(path.parent)  # another process made it first: read the winner's
    log.info("new installation %s (%s)", installation, path)
    return installation


__all__ = ["FILE_NAME", "load_or_create", "path_of"]
