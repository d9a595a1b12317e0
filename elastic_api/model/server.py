"""A server's configuration in no dialect's words (ServerConfig) and the rules across its fields
(validate); a change to it is model.server_patch.

Per-value rules that a dialect's syntax decides (a UUID's spelling, an IP, a number's digits) are
the dialect's; the rules here hold whatever the dialect: limits, a drive on one device only, a
NIC's MAC unique, boot naming configured devices, which changes a running server may take.
A broken rule raises a ConfigRefusal naming the parts in typed terms (a Device, a NIC index), so
a dialect can say the same thing in its own words."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from elastic_api.errors import UsageError
from elastic_api.model.cloudinit import GuestSetup
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
    # A cloud-init NoCloud seed for the guest (storage/seed.py), rebuilt from this at each start;
    # None: no seed.
    cloudinit: GuestSetup | None = None

    def drive_on(self, device: Device) -> DriveSlot | None:
        return next((slot for slot in self.drives if slot.device == device), None)


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


class NicOnTwoNetworks(ConfigRefusal):
    def __init__(self, index: int) -> None:
        super().__init__("a NIC is on the public network or on a VLAN, not both")
        self.index = index


class NicAddressNotIPv4(ConfigRefusal):
    def __init__(self, index: int) -> None:
        super().__init__("a NIC's address must be an IPv4 address or automatic")
        self.index = index


class AddressOnTwoNics(ConfigRefusal):
    def __init__(self, index: int, address: str, first: int) -> None:
        # Two MACs for one address: the public network's DHCP could answer only one of them.
        super().__init__(f"{address} is on two NICs")
        self.index, self.address, self.first = index, address, first


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
    return replace(
        config,
        drives=tuple(sorted(config.drives, key=lambda s: s.device.order)),
        nics=tuple(sorted(config.nics, key=lambda n: n.index)),
    )


def referenced_drives(config: ServerConfig) -> list[str]:
    """Every drive UUID the configuration names (attached, then avoided), each once, for the
    service to check the user may use them."""
    return list(dict.fromkeys([*(slot.drive for slot in config.drives), *config.avoid_drives]))


__all__ = [
    "Boot",
    "ConfigRefusal",
    "DriveSlot",
    "Nic",
    "ReadOnlyIdeDisk",
    "ServerConfig",
    "SharedQcow2",
    "check_boot",
    "check_drives",
    "check_macs",
    "check_media",
    "check_nic",
    "derived_mac",
    "mac_of",
    "referenced_drives",
    "settle",
    "validate",
    "vcpu_count",
]
