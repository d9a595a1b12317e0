"""A change to a server's configuration in no dialect's words: what it says (ServerPatch), how
it applies (apply_patch), and which of its changes a running server may take (check_live)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from elastic_api.errors import BusyError
from elastic_api.model.cloudinit import GuestSetup
from elastic_api.model.device import Device
from elastic_api.model.server import (
    NIC_PARTS,
    Boot,
    DriveSlot,
    DriveTwice,
    MediaWithoutDrive,
    Nic,
    NicWithoutModel,
    ServerConfig,
    check_boot,
    check_macs,
    check_media,
    check_nic,
    derived_mac,
    validate,
)


# Fields an active server may change: they touch neither the guest's hardware nor its placement.
# The cloud-init seed is rebuilt at each start: a change reaches the guest at its next one.
LIVE_FIELDS = frozenset({"name", "cpu", "persistent", "tags", "vnc_password", "user", "cloudinit"})


class Keep(enum.Enum):
    """A patch's word for "this field stays as it is"."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class DriveChange:
    """A change to one device: its drive (a UUID, None to detach it) and its media (None: back to
    disk). Detaching a drive detaches its media too unless the same change gives one."""

    drive: str | Keep | None = KEEP
    media: str | Keep | None = KEEP


@dataclass(frozen=True)
class NicChange:
    """A change to one NIC's parts; None removes a part. Removing the model removes the NIC, with
    every part the same change does not give; a removed MAC is derived again."""

    model: str | Keep | None = KEEP
    mac: str | Keep | None = KEEP
    dhcp: str | Keep | None = KEEP
    vlan: str | Keep | None = KEEP


@dataclass(frozen=True)
class CloudInitChange:
    """A change to the server's cloud-init seed: `enabled` False removes the seed with all its
    parts (whatever else the change says); a part given (None or () removes it) gives a server
    without a seed one."""

    enabled: bool | Keep = KEEP
    ssh_keys: tuple[str, ...] | Keep = KEEP
    password_hash: str | Keep | None = KEEP
    script: str | Keep | None = KEEP


def _patched_cloudinit(config: ServerConfig, change: CloudInitChange) -> GuestSetup | None:
    if change.enabled is False:
        return None
    parts = {name: value for name, value in vars(change).items() if name != "enabled" and value is not KEEP}
    if not parts and change.enabled is KEEP:
        return config.cloudinit
    return replace(config.cloudinit or GuestSetup(), **parts)


@dataclass(frozen=True)
class ServerPatch:
    """What a change to a server's configuration says: each field KEEP (unchanged) or its new
    value, an optional field's default (None, False, ()) removing it; per device, per NIC and per
    user key the parts it changes, in the order given. `name`, `cpu` and `mem` cannot be removed."""

    name: str | Keep = KEEP
    cpu: int | Keep = KEEP
    mem: int | Keep = KEEP
    smp: int | Keep | None = KEEP
    persistent: bool | Keep = KEEP
    boot: tuple[Boot, ...] | Keep = KEEP
    vnc: str | Keep | None = KEEP
    vnc_password: str | Keep | None = KEEP
    vnc_tls: bool | Keep = KEEP
    tags: tuple[str, ...] | Keep = KEEP
    avoid_drives: tuple[str, ...] | Keep = KEEP
    avoid_servers: tuple[str, ...] | Keep = KEEP
    cloudinit: CloudInitChange = field(default_factory=lambda: CloudInitChange())
    drives: Mapping[Device, DriveChange] = field(default_factory=dict)
    nics: Mapping[int, NicChange] = field(default_factory=dict)
    user: Mapping[str, str | None] = field(default_factory=dict)  # None removes the key


_SCALARS = (
    "name",
    "cpu",
    "mem",
    "smp",
    "persistent",
    "boot",
    "vnc",
    "vnc_password",
    "vnc_tls",
    "tags",
    "avoid_drives",
    "avoid_servers",
)


@dataclass(frozen=True)
class Field:
    """One part of a configuration: a field of ServerConfig (`cpu`), or a part of one of its
    entries: of a drive slot (`drives`, part `drive` or `media`, of a Device), of a NIC (`nics`,
    part `model`, `mac`, `dhcp` or `vlan`, of an index), a user key (`user`, of its name)."""

    name: str
    part: str | None = None
    of: Device | int | str | None = None


class LiveChangeRefused(BusyError):
    """A change an active server cannot take; `fields` are every refused one (a dialect names the
    one the client asked for when it can)."""

    def __init__(self, fields: Sequence[Field]) -> None:
        super().__init__("the change needs the server stopped first")
        self.fields = tuple(fields)


def _patched_drives(config: ServerConfig, patch: ServerPatch) -> list[DriveSlot]:
    # Kept and changed slots where they were, new ones after, as a merge of the two would list
    # them: the order says which of two devices holding one drive is named.
    slots: dict[Device, tuple[str | None, str | None]] = {s.device: (s.drive, s.media) for s in config.drives}
    for device, change in patch.drives.items():
        drive, media = slots.get(device, (None, None))
        if not isinstance(change.drive, Keep):
            drive = change.drive
        if not isinstance(change.media, Keep):
            media = change.media
        elif change.drive is None:
            media = None  # detaching a drive detaches its media
        slots[device] = (drive, media)
    result: list[DriveSlot] = []
    for device, (drive, media) in slots.items():
        if drive is None:
            if media is not None:
                raise MediaWithoutDrive(device)
            continue
        slot = DriveSlot(device, drive, media or "disk")
        if any(s.drive == drive for s in result):
            raise DriveTwice(device, drive, next(s.device for s in result if s.drive == drive))
        check_media(slot)
        result.append(slot)
    return result


def _patched_nics(config: ServerConfig, patch: ServerPatch, server: str) -> list[Nic]:
    parts: dict[int, dict[str, str | None]] = {
        nic.index: {"model": nic.model, "mac": nic.mac, "dhcp": nic.dhcp, "vlan": nic.vlan} for nic in config.nics
    }
    for index, change in patch.nics.items():
        current = dict(parts.get(index, dict.fromkeys(NIC_PARTS)))
        for part in NIC_PARTS:
            value = getattr(change, part)
            if not isinstance(value, Keep):
                current[part] = value
            elif change.model is None:
                current[part] = None  # removing the model removes the NIC, and what it had
        parts[index] = current
    nics = []
    for index, nic in sorted(parts.items()):
        model = nic["model"]
        if model is None:
            given = sorted(part for part in NIC_PARTS if nic[part] is not None)
            if given:
                raise NicWithoutModel(index, given)
            continue
        candidate = Nic(index, model, nic["mac"] or derived_mac(server, index), nic["dhcp"], nic["vlan"])
        check_nic(candidate)
        nics.append(candidate)
    check_macs(nics)
    return nics


def apply_patch(config: ServerConfig, patch: ServerPatch, server: str) -> ServerConfig:
    """The configuration of server `server` after `patch`: what the patch gives replaces the old
    value, the rest stays. Raises a ConfigRefusal for a result that breaks a rule, checking the
    drives first, then the NICs, then boot."""
    scalars = {name: getattr(patch, name) for name in _SCALARS if not isinstance(getattr(patch, name), Keep)}
    drives = _patched_drives(config, patch)
    nics = _patched_nics(config, patch, server)
    user = dict(config.user)
    for key, value in patch.user.items():
        if value is None:
            user.pop(key, None)
        else:
            user[key] = value
    updated = replace(
        config,
        **scalars,
        drives=tuple(drives),
        nics=tuple(nics),
        user=tuple(sorted(user.items())),
        cloudinit=_patched_cloudinit(config, patch.cloudinit),
    )
    check_boot(updated.boot, updated.drives, updated.nics)
    return validate(updated)


# --- what changed, and what a running server may take ------------------------------------------


def _parts(config: ServerConfig) -> dict[Field, object]:
    """Every part of a configuration that is present, by Field."""
    parts: dict[Field, object] = {Field(name): getattr(config, name) for name in (*_SCALARS, "cloudinit")}
    for slot in config.drives:
        parts[Field("drives", "drive", slot.device)] = slot.drive
        parts[Field("drives", "media", slot.device)] = slot.media
    for nic in config.nics:
        for part in NIC_PARTS:
            value = getattr(nic, part)
            if value is not None:
                parts[Field("nics", part, nic.index)] = value
    for key, value in config.user:
        parts[Field("user", None, key)] = value
    return parts


def changed_fields(old: ServerConfig, new: ServerConfig) -> list[Field]:
    """The parts whose value differs between two configurations (added and removed ones too)."""
    before, after = _parts(old), _parts(new)
    return [f for f in dict.fromkeys([*before, *after]) if before.get(f) != after.get(f)]


def is_live_field(part: Field) -> bool:
    """Whether an active server may change this part: name, cpu, persistent, tags, user keys and
    the VNC password."""
    return part.name in LIVE_FIELDS


def check_live(old: ServerConfig, new: ServerConfig) -> list[Field]:
    """The changed parts of a change to an active server; LiveChangeRefused with those it may not
    change."""
    changed = changed_fields(old, new)
    refused = [part for part in changed if not is_live_field(part)]
    if refused:
        raise LiveChangeRefused(refused)
    return changed


__all__ = [
    "KEEP",
    "CloudInitChange",
    "DriveChange",
    "Field",
    "Keep",
    "LiveChangeRefused",
    "NicChange",
    "ServerPatch",
    "apply_patch",
    "changed_fields",
    "check_live",
    "is_live_field",
]
