"""ElasticHosts drive keys: a create or set's properties parsed into a DriveSpec or DriveChanges,
a drive, a checksum and a standard image rendered as the info a client sees."""

from __future__ import annotations

from elastic_api.api.elastichosts.codec.fields import ids, is_user_key, one_of
from elastic_api.api.elastichosts.properties import Info, Props
from elastic_api.errors import UsageError
from elastic_api.model.drive import (
    CIPHERS,
    CLAIM_TYPES,
    FORMATS,
    MAX_WORDS,
    TIERS,
    Checksum,
    Drive,
    DriveChanges,
    DriveSpec,
    check_size,
)
from elastic_api.model.fields import parse_name, parse_tags, parse_user_value
from elastic_api.model.job import RUNNING, ImageParams
from elastic_api.model.units import parse_size

# Keys the server reports but a client never sets.
READ_ONLY = frozenset(
    {
        "drive",
        "user",
        "status",
        "claimed",
        "imaging",
        "read:bytes",
        "read:requests",
        "write:bytes",
        "write:requests",
    }
)
CREATE_KEYS = frozenset(
    {"name", "size", "claim:type", "readers", "tags", "encryption:cipher", "avoid", "tier", "format"}
)
SET_KEYS = frozenset({"name", "size", "claim:type", "readers", "tags"})
FIXED_AFTER_CREATE = frozenset({"encryption:cipher", "format", "avoid", "tier"})
# The field of DriveSpec / DriveChanges each key sets.
_FIELDS = {"claim:type": "claim_type", "encryption:cipher": "encryption"}
ENCRYPTED_RAW = (
    "an encrypted drive is qcow2 (LUKS inside): create it without format raw, or with encryption:cipher none"
)


def _values(props: Props, *, creating: bool, max_size: int) -> tuple[dict[str, object], dict[str, str]]:
    """Each key's value, checked in the order given: the first bad key is named in the error."""
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
        else:
            values[_FIELDS.get(key, key)] = _value(key, value, max_size)
    return values, user_keys


def _value(key: str, value: str, max_size: int) -> object:
    if key == "name":
        return parse_name(value)
    if key == "size":
        return check_size(parse_size(value), max_size)
    if key == "claim:type":
        return one_of(key, value, CLAIM_TYPES)
    if key == "readers":
        return ids(key, value, MAX_WORDS, allow_all=True)
    if key == "tags":
        return parse_tags(value)
    if key == "encryption:cipher":
        return one_of(key, value, CIPHERS)
    if key == "avoid":
        return ids(key, value, MAX_WORDS)
    if key == "tier":
        return one_of(key, value, TIERS)
    assert key == "format", key
    return one_of(key, value, FORMATS)


def parse_spec(props: Props, *, max_size: int) -> DriveSpec:
    """A create's keys (name and size required)."""
    values, user_keys = _values(props, creating=True, max_size=max_size)
    for required in ("name", "size"):
        if required not in values:
            raise UsageError(f"{required} is required to create a drive")
    return DriveSpec(user_keys=user_keys, **values)  # type: ignore[arg-type]


def parse_changes(props: Props, *, max_size: int) -> DriveChanges:
    """A set's keys: only what may change after a create."""
    values, user_keys = _values(props, creating=False, max_size=max_size)
    return DriveChanges(user_keys=user_keys, **values)  # type: ignore[arg-type]


def _claimed(drive: Drive) -> list[str]:
    """The servers that claim the drive and, while an image job copies into it, `image:SOURCE`:
    the job holds the drive as a server would, and clients have always seen it so."""
    job = drive.image_job
    copying = (
        [f"image:{job.params.source}"]
        if job is not None and job.status == RUNNING and isinstance(job.params, ImageParams)
        else []
    )
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


def checksum_info(checksum: Checksum) -> Info:
    return {"drive": checksum.drive, "offset": checksum.offset, "size": checksum.size, "sha256": checksum.sha256}
