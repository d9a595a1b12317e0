"""Drive keys: a random passphrase per encrypted drive, kept only wrapped by the master key."""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from elastic_api.errors import FailedError

# A 256-bit master key (AES-256-GCM wraps each drive key).
MASTER_KEY_BYTES = 32
# Random bits behind each drive's LUKS passphrase: as strong as the AES-256-XTS volume key it opens.
DRIVE_KEY_BYTES = 32
# Wrapped keys start with this version byte, then a 96-bit GCM nonce, then ciphertext and tag.
WRAP_VERSION = b"\x01"
NONCE_BYTES = 12


def new_master_key() -> bytes:
    return secrets.token_bytes(MASTER_KEY_BYTES)


def _associated(drive: str) -> bytes:
    # The drive's UUID as associated data: a wrapped key copied onto another drive's row fails to
    # unwrap instead of opening the wrong volume.
    return b"elastic-api drive key v1 " + drive.encode()


def new_wrapped_key(master: bytes, drive: str) -> bytes:
    """A fresh random drive key, wrapped for the database; the plain key is never stored."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    key = secrets.token_bytes(DRIVE_KEY_BYTES)
    return WRAP_VERSION + nonce + AESGCM(master).encrypt(nonce, key, _associated(drive))


def unwrap_passphrase(master: bytes, drive: str, wrapped: bytes) -> bytes:
    """The drive's LUKS passphrase (its key in base64: printable, so every tool takes it as is)."""
    if len(wrapped) <= 1 + NONCE_BYTES or wrapped[:1] != WRAP_VERSION:
        raise FailedError(f"drive {drive} has no usable key")
    nonce, sealed = wrapped[1 : 1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES :]
    try:
        key = AESGCM(master).decrypt(nonce, sealed, _associated(drive))
    except InvalidTag:
        raise FailedError(f"drive {drive}'s key does not open with this master key") from None
    return base64.b64encode(key)


def parse_master_key(text: bytes) -> bytes | None:
    """The key from a master key file's contents (64 hex digits and an optional newline), or None."""
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return key if len(key) == MASTER_KEY_BYTES else None


def format_master_key(key: bytes) -> bytes:
    """Hex text: a backup can be printed, read back and typed in."""
    return key.hex().encode() + b"\n"
