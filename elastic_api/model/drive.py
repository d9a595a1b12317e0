"""Drives: the record, what a create asks for (DriveSpec), what a set changes (DriveChanges), and
the values each field allows. How a dialect spells them is its codec's business."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from elastic_api.errors import UsageError
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.job import Job

CLAIM_TYPES = ("exclusive", "shared")
TIERS = ("disk", "ssd")
FORMATS = ("raw", "qcow2")
# aes-xts-plain: a LUKS volume (AES-256-XTS, plain64 IVs) through QEMU's block layer; none: plain.
CIPHERS = ("none", "aes-xts-plain")
# readers and avoid: 64 UUIDs are more than any sharing or placement needs, and bound a row.
MAX_WORDS = 64


@dataclass(frozen=True)
class Drive:
    drive: str
    owner: str
    name: str
    size: int
    format: str = "raw"
    claim_type: str = "exclusive"
    readers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # The client's own keys → values, each key as the client named it (stored as given).
    user_keys: dict[str, str] = field(default_factory=dict)
    encryption: str = "none"
    tier: str = "disk"
    avoid: tuple[str, ...] = ()
    created: int = 0  # nanoseconds since the epoch: orders pages
    read_bytes: int = 0
    read_requests: int = 0
    write_bytes: int = 0
    write_requests: int = 0
    # The pending image job (running, else the first queued) and the last one's failure, until
    # the next is asked for: both from the drive's jobs (filled by the store; progress live).
    image_job: Job | None = None
    imaging_error: str | None = None
    claimed: tuple[str, ...] = ()  # servers using it (filled by the store)
    # The drive's own key wrapped by the master key (encrypted drives only); never shown to anyone.
    wrapped_key: bytes | None = field(default=None, repr=False)

    @property
    def encrypted(self) -> bool:
        return self.encryption != "none"

    def readable_by(self, user: str) -> bool:
        return self.owner == user or user in self.readers or ALL_USERS in self.readers


_DRIVE_FIELDS = frozenset(f.name for f in dataclasses.fields(Drive))


def stored_drive(values: dict[str, Any]) -> Drive:
    """A Drive from every one of its fields' values as a store read them back (what the store
    wrote, so already checked). The same object the constructor makes, made without it: a
    frozen dataclass's __init__ sets each of the 21 fields through object.__setattr__, which
    was a tenth of an `info` request's time. A missing or unknown name is a TypeError, as the
    constructor would raise."""
    if values.keys() != _DRIVE_FIELDS:
        raise TypeError(f"a stored drive names exactly Drive's fields, not {sorted(values.keys() ^ _DRIVE_FIELDS)}")
    drive = object.__new__(Drive)
    drive.__dict__.update(values)
    return drive


@dataclass(frozen=True)
class IoCounts:
    """I/O counted on a drive and not yet stored (they add to the stored counters)."""

    read_bytes: int = 0
    read_requests: int = 0
    write_bytes: int = 0
    write_requests: int = 0

    def __add__(self, other: IoCounts) -> IoCounts:
        return IoCounts(
            self.read_bytes + other.read_bytes,
            self.read_requests + other.read_requests,
            self.write_bytes + other.write_bytes,
            self.write_requests + other.write_requests,
        )


@dataclass(frozen=True)
class DriveSpec:
    """What a valid create asks for; None where the operator's default applies."""

    name: str
    size: int
    format: str | None = None  # None: the configured default format
    claim_type: str = "exclusive"
    readers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    user_keys: dict[str, str] = field(default_factory=dict)  # "" values are dropped
    encryption: str | None = None  # None: the configured default cipher
    tier: str = "disk"
    avoid: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriveChanges:
    """What a valid set asks for; None means "leave as it is". Format, cipher, tier and avoid are
    fixed when a drive is made, so a set cannot name them."""

    name: str | None = None
    size: int | None = None
    claim_type: str | None = None
    readers: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    user_keys: dict[str, str] = field(default_factory=dict)  # "" removes the key


@dataclass(frozen=True)
class Checksum:
    """SHA-256 of a drive's guest-visible bytes [offset, offset + size)."""

    drive: str
    offset: int
    size: int
    sha256: str


class EncryptedRawError(UsageError):
    """An encrypted drive asked to be raw: encrypted drives are qcow2 with LUKS inside, thin
    whatever their size. A dialect may say so in its own words."""


def check_size(size: int, max_size: int) -> int:
    if not 0 < size <= max_size:
        raise UsageError(f"size must be between 1 byte and {max_size} bytes")
    return size


def _check(what: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise UsageError(f"{what} must be one of {', '.join(allowed)}")


def _check_ids(what: str, values: tuple[str, ...] | None) -> None:
    if values is not None and len(values) > MAX_WORDS:
        raise UsageError(f"{what} holds more than {MAX_WORDS} entries")


def check_spec(spec: DriveSpec, max_size: int) -> None:
    """What every dialect's create must hold, whoever parsed it (a codec names the wire key first)."""
    check_size(spec.size, max_size)
    _check("format", spec.format, FORMATS)
    _check("claim type", spec.claim_type, CLAIM_TYPES)
    _check("encryption", spec.encryption, CIPHERS)
    _check("tier", spec.tier, TIERS)
    _check_ids("readers", spec.readers)
    _check_ids("avoid", spec.avoid)
    if ALL_USERS in spec.avoid:
        raise UsageError("avoid must name real objects")


def check_changes(changes: DriveChanges, max_size: int) -> None:
    if changes.size is not None:
        check_size(changes.size, max_size)
    _check("claim type", changes.claim_type, CLAIM_TYPES)
    _check_ids("readers", changes.readers)


def new_drive(
    drive: str, owner: str, spec: DriveSpec, *, default_format: str, created: int, default_cipher: str = "none"
) -> Drive:
    encryption = spec.encryption or default_cipher
    fmt = spec.format or default_format
    if encryption != "none":
        # Encrypted drives are qcow2 with LUKS inside: thin whatever their size, reading zeros
        # where nothing was written. An encrypted raw (LUKS) file would be written whole.
        if spec.format == "raw":
            raise EncryptedRawError("an encrypted drive is qcow2 (LUKS inside), never raw")
        fmt = "qcow2"
    return Drive(
        drive=drive,
        owner=owner,
        name=spec.name,
        size=spec.size,
        format=fmt,
        claim_type=spec.claim_type,
        readers=spec.readers,
        tags=spec.tags,
        user_keys={k: v for k, v in spec.user_keys.items() if v},
        encryption=encryption,
        tier=spec.tier,
        avoid=spec.avoid,
        created=created,
    )


def apply_changes(drive: Drive, changes: DriveChanges) -> Drive:
    user_keys = dict(drive.user_keys)
    for key, value in changes.user_keys.items():
        if value:
            user_keys[key] = value
        else:
            user_keys.pop(key, None)
    updates = {
        f.name: getattr(changes, f.name)
        for f in dataclasses.fields(changes)
        if f.name != "user_keys" and getattr(changes, f.name) is not None
    }
    return dataclasses.replace(drive, user_keys=user_keys, **updates)
