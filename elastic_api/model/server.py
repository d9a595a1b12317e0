"""A server's configuration in no dialect's words: what it is (ServerConfig), what a change to it
says (ServerPatch), and the rules across its fields (validate, apply_patch, live_refusals).

Per-value rules that a dialect's syntax decides (a UUID's spelling, an IP, a number's digits) are
the dialect's; the rules here hold whatever the dialect: limits, a drive on one device only, a
NIC's MAC unique, boot naming configured devices, which changes a running server may take.
A broken rule raises a ConfigRefusal naming the parts in typed terms (a Device, a NIC index), so
a dialect can say the same thing in its own words."""
from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from elastic_api.errors import BusyError, UsageError
from elastic_api.model.device import Device

# Limits on the numbers a server may ask for. Each says why.
# Below a tenth of a 1 GHz core a guest's firmware alone takes minutes to boot.
CPU_MIN_MHZ = 100
# 128 vCPUs of 2 GHz: past that a request is a typo, not a server.
CPU_MAX_MHZ = 256_000
# QEMU's `pc` machine (the one with IDE) takes at most 255 vCPUs; 128 keeps clear of that edge.
SMP_MAX = 128
# SeaBIOS and a boot loader fit in 16 MB; smaller guests fail to boot in confusing ways.
MEM_MIN_MB = 16
# 1 TiB: beyond what any one host here can give, so larger values are mistakes.
MEM_MAX_MB = 1024 * 1024
# Two NICs are common and a few more suit multi-VLAN guests; 8 never runs out of PCI slots.
MAX_NICS = 8
# VNC's DES challenge uses an 8-byte key: longer passwords would be silently cut by every VNC server.
MAX_VNC_PASSWORD = 8

NIC_MODELS = ("e1000", "rtl8139", "virtio")
MEDIA = ("disk", "cdrom")
NIC_PARTS = ("model", "mac", "dhcp", "vlan")
# Fields an active server may change: they touch neither the guest's hardware nor its placement.
LIVE_FIELDS = frozenset({"name", "cpu", "persistent", "tags", "vnc_password", "user"})

# What a server boots from, in order: a drive's device, or a NIC by its index.
Boot = Device | int


@dataclass(frozen=True)
class DriveSlot:
    """One drive attached to a server: the device it sits on, the drive's UUID, and whether the
    guest sees it as a disk or a cdrom."""

    device: Device
    drive: str
    media: str = "disk"


@dataclass(frozen=True)
class Nic:
    """One network interface. `mac` None until the server has a UUID (settle): then it is the one
    given, or one derived from the server's UUID so it stays the same across restarts and sets."""

    index: int
    model: str
    mac: str | None = None
    dhcp: str | None = None  # an IP resource's address, or "auto"
    vlan: str | None = None  # a VLAN resource's UUID


@dataclass(frozen=True)
class ServerConfig:
    """A server's configuration, validated. `smp` None means automatic (derived from `cpu`)."""

    name: str
    cpu: int
    mem: int
    smp: int | None = None
    persistent: bool = False
    drives: tuple[DriveSlot, ...] = ()
    boot: tuple[Boot, ...] = ()
    nics: tuple[Nic, ...] = ()
    vnc: str | None = None  # "auto" or an IP address; None: no VNC display
    vnc_password: str | None = None
    vnc_tls: bool = False
    tags: tuple[str, ...] = ()
    user: tuple[tuple[str, str], ...] = ()  # (the client's own key, value), sorted by key
    avoid_drives: tuple[str, ...] = ()
    avoid_servers: tuple[str, ...] = ()

    def drive_on(self, device: Device) -> DriveSlot | None:
        return next((slot for slot in self.drives if slot.device == device), None)


class Keep(enum.Enum):
    """A patch's word for "this field stays as it is"."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class DriveChange:
    """A change to one device: its drive (a UUID, None to detach it) and its media (None: back to
    disk). Detaching a drive detaches its media too unless the same change gives one."""

    drive: str | None | Keep = KEEP
    media: str | None | Keep = KEEP


@dataclass(frozen=True)
class NicChange:
    """A change to one NIC's parts; None removes a part. Removing the model removes the NIC, with
    every part the same change does not give; a removed MAC is derived again."""

    model: str | None | Keep = KEEP
    mac: str | None | Keep = KEEP
    dhcp: str | None | Keep = KEEP
    vlan: str | None | Keep = KEEP


@dataclass(frozen=True)
class ServerPatch:
    """What a change to a server's configuration says: each field KEEP (unchanged) or its new
    value, an optional field's default (None, False, ()) removing it; per device, per NIC and per
    user key the parts it changes, in the order given. `name`, `cpu` and `mem` cannot be removed."""

    name: str | Keep = KEEP
    cpu: int | Keep = KEEP
    mem: int | Keep = KEEP
    smp: int | None | Keep = KEEP
    persistent: bool | Keep = KEEP
    boot: tuple[Boot, ...] | Keep = KEEP
    vnc: str | None | Keep = KEEP
    vnc_password: str | None | Keep = KEEP
    vnc_tls: bool | Keep = KEEP
    tags: tuple[str, ...] | Keep = KEEP
    avoid_drives: tuple[str, ...] | Keep = KEEP
    avoid_servers: tuple[str, ...] | Keep = KEEP
    drives: Mapping[Device, DriveChange] = field(default_factory=dict)
    nics: Mapping[int, NicChange] = field(default_factory=dict)
    user: Mapping[str, str | None] = field(default_factory=dict)  # None removes the key


_SCALARS = ("name", "cpu", "mem", "smp", "persistent", "boot", "vnc", "vnc_password", "vnc_tls", "tags",
            "avoid_drives", "avoid_servers")


@dataclass(frozen=True)
class Field:
    """One part of a configuration: a field of ServerConfig (`cpu`), or a part of one of its
    entries: of a drive slot (`drives`, part `drive` or `media`, of a Device), of a NIC (`nics`,
    part `model`, `mac`, `dhcp` or `vlan`, of an index), a user key (`user`, of its name)."""

    name: str
    part: str | None = None
    of: Device | int | str | None = None


# --- refusals: a broken rule, named in typed terms -----------------------------------------------


class ConfigRefusal(UsageError):
    """A configuration breaks a rule across its fields. The message is neutral; a dialect says it
    with its own names for the parts (which the attributes of each kind carry)."""


class DriveTwice(ConfigRefusal):
    def __init__(self, device: Device, drive: str, first: Device) -> None:
        # Two devices on one volume would have QEMU write it through two caches: corruption.
        super().__init__(f"drive {drive} is attached twice")
        self.device, self.drive, self.first = device, drive, first


class MediaWithoutDrive(ConfigRefusal):
    def __init__(self, device: Device) -> None:
        super().__init__("media given for a device without a drive")
        self.device = device


class BadMedia(ConfigRefusal):
    def __init__(self, device: Device) -> None:
        super().__init__(f"media must be {' or '.join(MEDIA)}")
        self.device = device


class CdromOnVirtio(ConfigRefusal):
    def __init__(self, device: Device) -> None:
        super().__init__("a virtio block device cannot be a cdrom: it has no removable media")
        self.device = device


class NicWithoutModel(ConfigRefusal):
    def __init__(self, index: int, parts: Sequence[str]) -> None:
        super().__init__("a NIC's parts given without its model")
        self.index, self.parts = index, tuple(parts)


class BadNic(ConfigRefusal):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class BadNicModel(ConfigRefusal):
    def __init__(self, index: int) -> None:
        super().__init__(f"a NIC's model must be one of {', '.join(NIC_MODELS)}")
        self.index = index


class MacShared(ConfigRefusal):
    def __init__(self) -> None:
        super().__init__("two NICs of one server must not share a MAC address")


class BootNotConfigured(ConfigRefusal):
    def __init__(self, entry: Boot) -> None:
        super().__init__("boot names a device the server does not have")
        self.entry = entry


class BootTwice(ConfigRefusal):
    def __init__(self, entry: Boot) -> None:
        super().__init__("boot names a device twice")
        self.entry = entry


class ReadOnlyIdeDisk(ConfigRefusal):
    def __init__(self, device: Device, drive: str) -> None:
        # QEMU's IDE hard disk cannot be read-only; IDE cdroms, SCSI and virtio disks can.
        super().__init__(f"drive {drive} can only be attached read-only, which an IDE disk cannot be")
        self.device, self.drive = device, drive


class SharedQcow2(ConfigRefusal):
    def __init__(self, device: Device, drive: str) -> None:
        # Several QEMUs can only share a volume whose bytes are the guest's own: qcow2 metadata
        # would be rewritten by each of them.
        super().__init__(f"drive {drive} is qcow2, which cannot be shared between servers")
        self.device, self.drive = device, drive


class LiveChangeRefused(BusyError):
    """A change an active server cannot take; `fields` are every refused one (a dialect names the
    one the client asked for when it can)."""

    def __init__(self, fields: Sequence[Field]) -> None:
        super().__init__("the change needs the server stopped first")
        self.fields = tuple(fields)


# --- derived values ----------------------------------------------------------------------------


def derived_mac(server: str, index: int) -> str:
    """A stable MAC for NIC `index` of a server that did not give one.

    02:… is a locally administered unicast prefix; the other 40 bits come from a hash of the
    server's UUID and the index, so the MAC survives restarts and collisions need about a million
    NICs on one network (QEMU's 52:54:00 prefix would leave 24 bits: a few thousand). The hashed
    text is fixed for good: changing it would change every derived MAC.
    """
    digest = hashlib.sha256(f"{server}/nic:{index}".encode()).digest()
    return ":".join(["02", *(f"{b:02x}" for b in digest[:5])])


def mac_of(server: str, nic: Nic) -> str:
    """The MAC of a NIC of the server with UUID `server`: its own, or the derived one."""
    return nic.mac if nic.mac is not None else derived_mac(server, nic.index)


def vcpu_count(config: ServerConfig, host_core_mhz: int) -> int:
    """The vCPUs a server gets: its `smp`, or for automatic enough cores to carry its `cpu` MHz."""
    if config.smp is not None:
        return config.smp
    return max(1, min(SMP_MAX, math.ceil(config.cpu / max(1, host_core_mhz))))


def settle(config: ServerConfig, server: str) -> ServerConfig:
    """The configuration of the server with UUID `server`: every NIC without a MAC gets its
    derived one."""
    return replace(config, nics=tuple(replace(nic, mac=mac_of(server, nic)) for nic in config.nics))


# --- the rules across fields -----------------------------------------------------------------


def check_drives(slots: Iterable[DriveSlot]) -> None:
    """Each drive on one device only; media disk or cdrom, and no cdrom on virtio. In the order
    given, so the first slot breaking a rule is the one named."""
    attached: dict[str, Device] = {}
    for slot in slots:
        if slot.drive in attached:
            raise DriveTwice(slot.device, slot.drive, attached[slot.drive])
        attached[slot.drive] = slot.device
        check_media(slot)


def check_media(slot: DriveSlot) -> None:
    if slot.media not in MEDIA:
        raise BadMedia(slot.device)
    if slot.media == "cdrom" and slot.device.bus == "virtio":
        raise CdromOnVirtio(slot.device)


def check_macs(nics: Iterable[Nic]) -> None:
    macs = [nic.mac for nic in nics if nic.mac is not None]
    if len(set(macs)) != len(macs):
        raise MacShared()


def check_boot(boot: Sequence[Boot], drives: Iterable[DriveSlot], nics: Iterable[Nic]) -> None:
    """Boot names configured devices, each once."""
    configured: set[Boot] = {slot.device for slot in drives} | {nic.index for nic in nics}
    seen: set[Boot] = set()
    for entry in boot:
        if entry not in configured:
            raise BootNotConfigured(entry)
        if entry in seen:
            raise BootTwice(entry)
        seen.add(entry)


def check_nic(nic: Nic) -> None:
    """A NIC's index in range and its model one we emulate."""
    if not 0 <= nic.index < MAX_NICS:
        raise BadNic(nic.index, f"NICs are numbered 0 to {MAX_NICS - 1}")
    if nic.model not in NIC_MODELS:
        raise BadNicModel(nic.index)


def _check_range(what: str, value: int, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise UsageError(f"{what} must be between {minimum} and {maximum}")


def validate(config: ServerConfig) -> ServerConfig:
    """The configuration if it keeps every rule across its fields and every limit; a
    ConfigRefusal (or UsageError for a limit) otherwise. Drives are put in bus order."""
    _check_range("cpu", config.cpu, CPU_MIN_MHZ, CPU_MAX_MHZ)
    _check_range("mem", config.mem, MEM_MIN_MB, MEM_MAX_MB)
    if config.smp is not None:
        _check_range("smp", config.smp, 1, SMP_MAX)
    check_drives(config.drives)
    for nic in config.nics:
        check_nic(nic)
    if len({nic.index for nic in config.nics}) != len(config.nics):
        raise BadNic(config.nics[0].index, "a NIC is given twice")
    check_macs(config.nics)
    check_boot(config.boot, config.drives, config.nics)
    if config.vnc_password is not None:
        if len(config.vnc_password) > MAX_VNC_PASSWORD:
            raise UsageError(f"a VNC password must be at most {MAX_VNC_PASSWORD} characters")
        if not all(" " <= c <= "~" for c in config.vnc_password):
            raise UsageError("a VNC password must be printable ASCII")
    return replace(config, drives=tuple(sorted(config.drives, key=lambda s: s.device.order)),
                   nics=tuple(sorted(config.nics, key=lambda n: n.index)))


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
        nic.index: {"model": nic.model, "mac": nic.mac, "dhcp": nic.dhcp, "vlan": nic.vlan} for nic in config.nics}
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
    updated = replace(config, **scalars, drives=tuple(drives), nics=tuple(nics), user=tuple(sorted(user.items())))
    check_boot(updated.boot, updated.drives, updated.nics)
    return validate(updated)


# --- what changed, and what a running server may take ------------------------------------------


def _parts(config: ServerConfig) -> dict[Field, object]:
    """Every part of a configuration that is present, by Field."""
    parts: dict[Field, object] = {Field(name): getattr(config, name) for name in _SCALARS}
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


def referenced_drives(config: ServerConfig) -> list[str]:
    """Every drive UUID the configuration names (attached, then avoided), each once, for the
    service to check the user may use them."""
    return list(dict.fromkeys([*(slot.drive for slot in config.drives), *config.avoid_drives]))


__all__ = [
    "KEEP",
    "Boot",
    "ConfigRefusal",
    "DriveChange",
    "DriveSlot",
    "Field",
    "Keep",
    "LiveChangeRefused",
    "Nic",
    "NicChange",
    "ServerConfig",
    "ReadOnlyIdeDisk",
    "ServerPatch",
    "SharedQcow2",
    "apply_patch",
    "changed_fields",
    "check_boot",
    "check_drives",
    "check_live",
    "check_macs",
    "check_nic",
    "derived_mac",
    "mac_of",
    "is_live_field",
    "referenced_drives",
    "settle",
    "validate",
    "vcpu_count",
]
