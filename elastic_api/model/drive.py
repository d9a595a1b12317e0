"""Drives: the record, the keys create and set accept, and the info a client sees."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from elastic_api.errors import UsageError
from elastic_api.model.fields import is_user_key, parse_name, parse_tags, parse_user_value
from elastic_api.model.ids import ALL_USERS, parse_id
from elastic_api.model.job import RUNNING, Job
from elastic_api.model.properties import Info, Props, words
from elastic_api.model.units import parse_size

CLAIM_TYPES = ("exclusive", "shared")
TIERS = ("disk", "ssd")
FORMATS = ("raw", "qcow2")
# aes-xts-plain: a LUKS volume (AES-256-XTS, plain64 IVs) through QEMU's block layer; none: plain.
CIPHERS = ("none", "aes-xts-plain")
# readers and avoid: 64 UUIDs are more than any sharing or placement needs, and bound a row.
MAX_WORDS = 64

# Keys the server reports but a client never sets.
READ_ONLY = frozenset({
    "drive", "user", "status", "claimed", "imaging", "read:bytes", "read:requests",
    "write:bytes", "write:requests",
})
CREATE_KEYS = frozenset({"name", "size", "claim:type", "readers", "tags", "encryption:cipher",
                         "avoid", "tier", "format"})
SET_KEYS = frozenset({"name", "size", "claim:type", "readers", "tags"})
FIXED_AFTER_CREATE = frozenset({"encryption:cipher", "format", "avoid", "tier"})


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


@dataclass(frozen=True)
class DriveChanges:
    """What a valid create or set asks for; None means "leave as it is"."""

    name: str | None = None
    size: int | None = None
    format: str | None = None
    claim_type: str | None = None
    readers: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    user_keys: dict[str, str] = field(default_factory=dict)  # "" removes the key
    encryption: str | None = None
    tier: str | None = None
    avoid: tuple[str, ...] | None = None


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{key} must be one of {', '.join(allowed)}")
    return value


def _ids(key: str, value: str, *, allow_all: bool = False) -> tuple[str, ...]:
    result = []
    for word in words(value)[: MAX_WORDS + 1]:
        parsed = parse_id(word)
        if parsed is None:
            raise UsageError(f"{key} must be a list of UUIDs: {word[:40]!r}")
        if parsed == ALL_USERS and not allow_all:
            raise UsageError(f"{key} must name real objects")
        if parsed not in result:
            result.append(parsed)
    if len(result) > MAX_WORDS:
        raise UsageError(f"{key} holds more than {MAX_WORDS} entries")
    return tuple(result)


def parse_changes(props: Props, *, creating: bool, max_size: int) -> DriveChanges:
    """Validate the keys of a drive create or set; the first bad key is named in the error."""
    allowed = CREATE_KEYS if creating else SET_KEYS
    values: dict[str, object] = {}
    user_keys: dict[str, str] = {}
    for key, value in props.items():
        if is_user_key(key):
            user_keys[key] = parse_user_value(key, value)
        elif key in READ_ONLY:
            raise UsageError(f"{key} is read-only")
        elif not creating and key in FIXED_AFTER_CREATE:
            raise UsageError(f"{key} cannot be changed after a drive is created")
        elif key not in allowed:
            raise UsageError(f"unknown key: {key}")
        elif key == "name":
            values["name"] = parse_name(value)
        elif key == "size":
            size = parse_size(value)
            if not 0 < size <= max_size:
                raise UsageError(f"size must be between 1 byte and {max_size} bytes")
            values["size"] = size
        elif key == "claim:type":
            values["claim_type"] = _one_of(key, value, CLAIM_TYPES)
        elif key == "readers":
            values["readers"] = _ids(key, value, allow_all=True)
        elif key == "tags":
            values["tags"] = parse_tags(value)
        elif key == "encryption:cipher":
            values["encryption"] = _one_of(key, value, CIPHERS)
        elif key == "avoid":
            values["avoid"] = _ids(key, value)
        elif key == "tier":
            values["tier"] = _one_of(key, value, TIERS)
        elif key == "format":
            values["format"] = _one_of(key, value, FORMATS)
    if creating:
        for required in ("name", "size"):
            if required not in values:
                raise UsageError(f"{required} is required to create a drive")
    return DriveChanges(user_keys=user_keys, **values)  # type: ignore[arg-type]


def new_drive(drive: str, owner: str, changes: DriveChanges, *, default_format: str, created: int,
              default_cipher: str = "none") -> Drive:
    assert changes.name is not None and changes.size is not None
    encryption = changes.encryption or default_cipher
    fmt = changes.format or default_format
    if encryption != "none":
        # Encrypted drives are qcow2 with LUKS inside: thin whatever their size, reading zeros
        # where nothing was written. An encrypted raw (LUKS) file would be written whole.
        if changes.format == "raw":
            raise UsageError("an encrypted drive is qcow2 (LUKS inside): "
                             "create it without format raw, or with encryption:cipher none")
        fmt = "qcow2"
    return Drive(
        drive=drive, owner=owner, name=changes.name, size=changes.size,
        format=fmt,
        claim_type=changes.claim_type or "exclusive",
        readers=changes.readers or (), tags=changes.tags or (),
        user_keys={k: v for k, v in changes.user_keys.items() if v},
        encryption=encryption, tier=changes.tier or "disk",
        avoid=changes.avoid or (), created=created,
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


def _claimed(drive: Drive) -> list[str]:
    """The servers that claim the drive and, while an image job copies into it, `image:SOURCE`:
    the job holds the drive as a server would, and clients have always seen it so."""
    job = drive.image_job
    copying = [f"image:{job.params.source}"] if job is not None and job.status == RUNNING else []
    return [*drive.claimed, *copying]


def to_info(drive: Drive) -> Info:
    info: Info = {
        "drive": drive.drive,
        "name": drive.name,
        "size": drive.size,
        "user": drive.owner,
        "status": "active",
        "claimed": _claimed(drive),
        "claim:type": drive.claim_type,
        "readers": list(drive.readers),
        "tags": list(drive.tags),
        "encryption:cipher": drive.encryption,
        "format": drive.format,
        "tier": drive.tier,
        "read:bytes": drive.read_bytes,
        "read:requests": drive.read_requests,
        "write:bytes": drive.write_bytes,
        "write:requests": drive.write_requests,
    }
    if drive.avoid:
        info["avoid"] = list(drive.avoid)
    job = drive.image_job
    if job is not None:
        info["imaging"] = f"{job.progress}%" if job.status == RUNNING else "queued"
    if drive.imaging_error:
        info["imaging:error"] = drive.imaging_error
    info.update(sorted(drive.user_keys.items()))
    return info
