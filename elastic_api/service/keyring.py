"""The master key that wraps every drive key: a file outside the database, loaded at start-up."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from elastic_api.errors import ConfigError, FailedError
from elastic_api.model import keys
from elastic_api.once import create_once

log = logging.getLogger(__name__)
# A key file is a line of hex; anything much longer is not one (and is not read whole).
MAX_KEY_FILE = 4096


class Keyring:
    """Holds the master key once `open` has found it. Without the key no encrypted drive can be
    read, written or started, and the server refuses to start rather than run without it."""

    def __init__(self, path: Path, *, may_create: bool) -> None:
        self.path = path
        # Only the default location is ever created; a path the operator named must exist (an
        # unmounted key store must not quietly become a new, different key).
        self._may_create = may_create
        self._master: bytes | None = None

    async def open(self, sample: tuple[str, bytes] | None) -> None:
        """Load the key, or make one on a first start. `sample` is one encrypted drive's UUID and
        wrapped key (None when there are none): with drives to open, a missing key file or one
        that does not open them is a ConfigError."""
        master = await asyncio.to_thread(self._load_or_create, sample is not None)
        if sample is not None:
            try:
                keys.unwrap_passphrase(master, *sample)
            except FailedError:
                raise ConfigError(
                    f"master key file {self.path} does not open the keys of the encrypted "
                    "drives (is it the file they were made with?)"
                ) from None
        self._master = master

    def new_wrapped_key(self, drive: str) -> bytes:
        return keys.new_wrapped_key(self._key(), drive)

    def passphrase(self, drive: str, wrapped: bytes) -> bytes:
        return keys.unwrap_passphrase(self._key(), drive, wrapped)

    def _key(self) -> bytes:
        if self._master is None:
            raise FailedError("encrypted drives are unavailable: the master key is not loaded")
        return self._master

    def _load_or_create(self, needed: bool) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            if needed:
                raise ConfigError(
                    f"master key file {self.path} is missing and encrypted drives need it; restore it from its backup"
                ) from None
            if not self._may_create:
                raise ConfigError(f"master key file {self.path} (master_key_file) is missing") from None
            return self._create()
        except OSError as e:
            raise ConfigError(f"master key file {self.path} cannot be read: {e.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"master key file {self.path} is not a regular file")
            if info.st_mode & 0o077:
                raise ConfigError(f"master key file {self.path} must be readable by its owner only (chmod 600)")
            text = os.read(fd, MAX_KEY_FILE)
        except OSError as e:
            raise ConfigError(f"master key file {self.path} cannot be read: {e.strerror}") from None
        finally:
            os.close(fd)
        master = keys.parse_master_key(text)
        if master is None:
            raise ConfigError(f"master key file {self.path} does not hold a key (64 hex digits)")
        return master

    def _create(self) -> bytes:
        master = keys.new_master_key()
        try:
            made = create_once(self.path, keys.format_master_key(master), 0o600)
        except OSError as e:
            raise ConfigError(f"master key file {self.path} cannot be created: {e.strerror}") from None
        if not made:
            return self._load_or_create(False)  # another server starting made it first: use theirs
        log.warning("created master key file %s: back it up; encrypted drives cannot be read without it", self.path)
        return master
