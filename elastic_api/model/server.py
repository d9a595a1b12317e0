"""Server configuration keys: parsed and validated from props, merged on `set`, rendered back to info."""
from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from elastic_api.errors import BusyError, UsageError
from elastic_api.model.fields import is_user_key, parse_name, parse_tags, parse_user_value
from elastic_api.model.ids import parse_id
from elastic_api.model.properties import Info, Props, Value
from elastic_api.model.units import parse_count

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
# The docs show nic:0 and nic:1; a few more suit multi-VLAN guests, and 8 never runs out of PCI slots.
MAX_NICS = 8
# VNC's DES challenge uses an 8-byte key: longer passwords would be silently cut by every VNC server.
MAX_VNC_PASSWORD = 8

NIC_MODELS = ("e1000", "rtl8139", "virtio")
MEDIA = ("disk", "cdrom")
# Keys an active server may change: they touch neither the guest's hardware nor its placement.
LIVE_KEYS = frozenset({"name", "cpu", "persistent", "tags", "vnc:password"})
# Keys whose value is a list of words in info (JSON arrays, space-separated in text).
MULTI_KEYS = frozenset({"tags", "boot", "avoid:drives", "avoid:servers"})

_DEVICE = re.compile(r"^(?:ide:[01]:[01]|scsi:0:[0-7]|block:[0-7])$")
_DEVICE_MEDIA = re.compile(r"^((?:ide:[01]:[01]|scsi:0:[0-7]|block:[0-7])):media$")
_NIC_KEY = re.compile(r"^nic:([0-9]+):(model|dhcp|vlan|mac)$")
_NIC_DEVICE = re.compile(r"^nic:([0-9]+)$")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_SIMPLE_KEYS = frozenset({
    "name", "cpu", "smp", "mem", "persistent", "boot", "vnc", "vnc:password", "vnc:tls", "tags",
    "avoid:drives", "avoid:servers",
})
# A device's bus order: how devices are listed, and the default boot order when `boot` is absent.
_BUS_ORDER = {"ide": 0, "scsi": 1, "block": 2}


@dataclass(frozen=True)
class DriveSlot:
    """One drive attached to a server: the device it sits on (`ide:0:0`), the drive's UUID, and
    whether the guest sees it as a disk or a cdrom."""

    device: str
    drive: str
    media: str = "disk"


@dataclass(frozen=True)
class Nic:
    """One network interface, `nic:N`. The MAC is always concrete: given, or derived from the
    server's UUID so it stays the same across restarts and sets."""

    index: int
    model: str
    mac: str
    dhcp: str | None = None  # an IP resource's address, or "auto"
    vlan: str | None = None  # a VLAN resource's UUID

    @property
    def device(self) -> str:
        return f"nic:{self.index}"


@dataclass(frozen=True)
class ServerConfig:
    """A server's configuration keys, validated. `smp` None means `auto` (derived from `cpu`)."""

    name: str
    cpu: int
    mem: int
    smp: int | None = None
    persistent: bool = False
    drives: tuple[DriveSlot, ...] = ()
    boot: tuple[str, ...] = ()
    nics: tuple[Nic, ...] = ()
    vnc: str | None = None  # "auto" or an IP address; None: no VNC display
    vnc_password: str | None = None
    vnc_tls: bool = False
    tags: tuple[str, ...] = ()
    user: tuple[tuple[str, str], ...] = ()  # (user:* key, value), sorted by key
    avoid_drives: tuple[str, ...] = ()
    avoid_servers: tuple[str, ...] = ()

    def drive_on(self, device: str) -> DriveSlot | None:
        return next((slot for slot in self.drives if slot.device == device), None)


def is_device(name: str) -> bool:
    """A drive device name the protocol knows: `ide:[0-1]:[0-1]`, `scsi:0:[0-7]` or `block:[0-7]`."""
    return bool(_DEVICE.match(name))


def device_order(device: str) -> tuple[int, ...]:
    """Sort key putting devices in bus order (IDE, SCSI, virtio), then by their numbers."""
    bus, *numbers = device.split(":")
    return (_BUS_ORDER.get(bus, len(_BUS_ORDER)), *(int(n) for n in numbers))


def derived_mac(server: str, index: int) -> str:
    """A stable MAC for nic:N of a server that did not give one.

    02:… is a locally administered unicast prefix; the other 40 bits come from a hash of the
    server's UUID and N, so the MAC survives restarts and collisions need about a million NICs
    on one network (QEMU's 52:54:00 prefix would leave 24 bits: a few thousand).
    """
    digest = hashlib.sha256(f"{server}/nic:{index}".encode()).digest()
    return ":".join(["02", *(f"{b:02x}" for b in digest[:5])])


def vcpu_count(config: ServerConfig, host_core_mhz: int) -> int:
    """The vCPUs a server gets: its `smp`, or for `auto` enough cores to carry its `cpu` MHz."""
    if config.smp is not None:
        return config.smp
    return max(1, min(SMP_MAX, math.ceil(config.cpu / max(1, host_core_mhz))))


# --- parsing -------------------------------------------------------------------------------


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise UsageError(f"{key} must be true or false")
    return lowered == "true"


def _ip(key: str, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise UsageError(f"{key} must be an IP address: {value[:40]!r}") from None


def _ip_or_auto(key: str, value: str) -> str:
    return "auto" if value.strip().lower() == "auto" else _ip(key, value)


def _uuid(key: str, value: str) -> str:
    parsed = parse_id(value)
    if parsed is None:
        raise UsageError(f"{key} must be a UUID: {value[:40]!r}")
    return parsed


def _uuid_list(key: str, value: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for word in value.split():
        seen[_uuid(key, word)] = None
    return tuple(seen)


def parse_mac(key: str, value: str) -> str:
    """A unicast MAC in `aa:bb:cc:dd:ee:ff` form (any case), lower-cased."""
    mac = value.strip().lower()
    if not _MAC.match(mac):
        raise UsageError(f"{key} must be a MAC address like 02:00:00:00:00:01: {value[:40]!r}")
    first = int(mac[:2], 16)
    if first & 1:
        raise UsageError(f"{key} must be a unicast MAC address, not a multicast one")
    if mac == "00:00:00:00:00:00":
        raise UsageError(f"{key} must not be all zeros")
    if first == 0xFE:
        # libvirt gives fe:… to the host side of every guest NIC and refuses it for guests.
        raise UsageError(f"{key} must not start with fe, which the host's tap devices use")
    return mac


def _nic_index(key: str, text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text.startswith("0")) or int(text) >= MAX_NICS:
        raise UsageError(f"unknown key: {key} (NICs are nic:0 to nic:{MAX_NICS - 1})")
    return int(text)


def check_key(key: str) -> None:
    """UsageError unless key is a server configuration key."""
    if key in _SIMPLE_KEYS or _DEVICE.match(key) or _DEVICE_MEDIA.match(key):
        return
    if is_user_key(key):
        return
    nic = _NIC_KEY.match(key)
    if nic:
        _nic_index(key, nic.group(1))
        return
    raise UsageError(f"unknown key: {key}")


def parse_config(props: Mapping[str, str], server: str, *, stored: bool = False) -> ServerConfig:
    """Validate a whole configuration (a create, or the result of a set) for the server with UUID
    `server`. Every key must be known and every value valid; an empty value means "absent".
    Raises UsageError naming the first bad key. `stored`: a row the store already holds, whose
    free text (name, tags, user:*) may predate the control-character rule and loads as it is."""
    given = {}
    for key, value in props.items():
        check_key(key)
        if value.strip():
            given[key] = value
    for required in ("name", "cpu", "mem"):
        if required not in given:
            raise UsageError(f"{required} is required")

    name = given["name"].strip() if stored else parse_name(given["name"])
    cpu = parse_count(given["cpu"], "cpu", minimum=CPU_MIN_MHZ, maximum=CPU_MAX_MHZ)
    mem = parse_count(given["mem"], "mem", minimum=MEM_MIN_MB, maximum=MEM_MAX_MB)
    smp_text = given.get("smp", "auto").strip()
    smp = None if smp_text.lower() == "auto" else parse_count(smp_text, "smp", minimum=1, maximum=SMP_MAX)
    persistent = _bool("persistent", given["persistent"]) if "persistent" in given else False

    drives = _drives(given)
    nics = _nics(given, server)
    boot = _boot(given.get("boot", ""), drives, nics)

    vnc = _ip_or_auto("vnc", given["vnc"]) if "vnc" in given else None
    vnc_password = None
    if "vnc:password" in given:
        vnc_password = given["vnc:password"].strip()
        if len(vnc_password) > MAX_VNC_PASSWORD:
            raise UsageError(f"vnc:password must be at most {MAX_VNC_PASSWORD} characters")
        if not all(" " <= c <= "~" for c in vnc_password):
            raise UsageError("vnc:password must be printable ASCII")
    vnc_tls = False
    if "vnc:tls" in given:
        tls = given["vnc:tls"].strip().lower()
        if tls not in ("on", "off"):
            raise UsageError("vnc:tls must be on or off")
        vnc_tls = tls == "on"

    user = tuple(sorted(
        (key, value if stored else parse_user_value(key, value)) for key, value in given.items() if is_user_key(key)
    ))
    tags = tuple(dict.fromkeys(given.get("tags", "").split())) if stored else parse_tags(given.get("tags", ""))
    return ServerConfig(
        name=name, cpu=cpu, mem=mem, smp=smp, persistent=persistent, drives=drives, boot=boot,
        nics=nics, vnc=vnc, vnc_password=vnc_password, vnc_tls=vnc_tls,
        tags=tags, user=user,
        avoid_drives=_uuid_list("avoid:drives", given.get("avoid:drives", "")),
        avoid_servers=_uuid_list("avoid:servers", given.get("avoid:servers", "")),
    )


def _drives(given: Mapping[str, str]) -> tuple[DriveSlot, ...]:
    slots = []
    attached: dict[str, str] = {}
    for key, value in given.items():
        media_key = _DEVICE_MEDIA.match(key)
        if media_key and media_key.group(1) not in given:
            raise UsageError(f"{key} given without {media_key.group(1)}")
        if not _DEVICE.match(key):
            continue
        drive = _uuid(key, value)
        if drive in attached:
            # Two devices on one volume would have QEMU write it through two caches: corruption.
            raise UsageError(f"{key}: drive {drive} is already attached as {attached[drive]}")
        attached[drive] = key
        media = given.get(f"{key}:media", "disk").strip().lower()
        if media not in MEDIA:
            raise UsageError(f"{key}:media must be disk or cdrom")
        if media == "cdrom" and key.startswith("block:"):
            raise UsageError(f"{key}:media cannot be cdrom: virtio block devices have no removable media")
        slots.append(DriveSlot(key, drive, media))
    return tuple(sorted(slots, key=lambda s: device_order(s.device)))


def _nics(given: Mapping[str, str], server: str) -> tuple[Nic, ...]:
    fields: dict[int, dict[str, str]] = {}
    for key, value in given.items():
        match = _NIC_KEY.match(key)
        if match:
            fields.setdefault(_nic_index(key, match.group(1)), {})[match.group(2)] = value.strip()
    nics = []
    for index, nic in sorted(fields.items()):
        if "model" not in nic:
            other = sorted(nic)[0]
            raise UsageError(f"nic:{index}:{other} given without nic:{index}:model")
        model = nic["model"].lower()
        if model not in NIC_MODELS:
            raise UsageError(f"nic:{index}:model must be one of {', '.join(NIC_MODELS)}")
        mac = parse_mac(f"nic:{index}:mac", nic["mac"]) if "mac" in nic else derived_mac(server, index)
        dhcp = _ip_or_auto(f"nic:{index}:dhcp", nic["dhcp"]) if "dhcp" in nic else None
        vlan = _uuid(f"nic:{index}:vlan", nic["vlan"]) if "vlan" in nic else None
        nics.append(Nic(index, model, mac, dhcp, vlan))
    macs = [n.mac for n in nics]
    if len(set(macs)) != len(macs):
        raise UsageError("two NICs of one server must not share a MAC address")
    return tuple(nics)


def _boot(value: str, drives: Iterable[DriveSlot], nics: Iterable[Nic]) -> tuple[str, ...]:
    configured = {slot.device for slot in drives} | {nic.device for nic in nics}
    order: list[str] = []
    for word in value.split():
        device = word.lower()
        if not (_DEVICE.match(device) or _NIC_DEVICE.match(device)):
            raise UsageError(f"boot: {word[:40]!r} is not a device name")
        if device not in configured:
            raise UsageError(f"boot: {device} is not a configured device")
        if device in order:
            raise UsageError(f"boot: {device} given twice")
        order.append(device)
    return tuple(order)


# --- rendering, set, live changes ----------------------------------------------------------


def to_info(config: ServerConfig) -> Info:
    """The configuration as info keys: numbers as ints, multi-valued keys as lists of words.
    Absent optional keys are left out; every NIC shows its (possibly derived) MAC."""
    info: Info = {
        "name": config.name,
        "cpu": config.cpu,
        "smp": "auto" if config.smp is None else config.smp,
        "mem": config.mem,
        "persistent": "true" if config.persistent else "false",
    }
    for slot in config.drives:
        info[slot.device] = slot.drive
        info[f"{slot.device}:media"] = slot.media
    if config.boot:
        info["boot"] = list(config.boot)
    for nic in config.nics:
        info[f"nic:{nic.index}:model"] = nic.model
        if nic.dhcp is not None:
            info[f"nic:{nic.index}:dhcp"] = nic.dhcp
        if nic.vlan is not None:
            info[f"nic:{nic.index}:vlan"] = nic.vlan
        info[f"nic:{nic.index}:mac"] = nic.mac
    if config.vnc is not None:
        info["vnc"] = config.vnc
    if config.vnc_password is not None:
        info["vnc:password"] = config.vnc_password
    if config.vnc_tls:
        info["vnc:tls"] = "on"
    if config.tags:
        info["tags"] = list(config.tags)
    for key, value in config.user:
        info[key] = value
    if config.avoid_drives:
        info["avoid:drives"] = list(config.avoid_drives)
    if config.avoid_servers:
        info["avoid:servers"] = list(config.avoid_servers)
    return info


def _as_prop(value: Value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def to_props(config: ServerConfig) -> Props:
    """The configuration as the string props it would be parsed from (the inverse of parse_config)."""
    return {key: _as_prop(value) for key, value in to_info(config).items()}


def _removed_with(key: str) -> tuple[str, ...]:
    """Keys that go when `key` is removed: a device's media, or all of a NIC's keys with its model."""
    if _DEVICE.match(key):
        return (f"{key}:media",)
    nic = _NIC_KEY.match(key)
    if nic and nic.group(2) == "model":
        return tuple(f"nic:{nic.group(1)}:{part}" for part in ("dhcp", "vlan", "mac"))
    return ()


def apply_set(config: ServerConfig, props: Mapping[str, str], server: str) -> ServerConfig:
    """The configuration after a `set`: given keys replace the old values, other keys stay.
    An empty value removes an optional key (a device with its media, a NIC with all its keys)."""
    merged = to_props(config)
    for key, value in props.items():
        check_key(key)
        if value.strip():
            _check_free_text(key, value)
    for key, value in props.items():
        if value.strip():
            merged[key] = value
            continue
        merged.pop(key, None)
        for dependent in _removed_with(key):
            if dependent not in props:
                merged.pop(dependent, None)
    # The free text given was checked above; what was stored before the rule stays as it is, so
    # a set of `cpu` still works on a server whose old name holds a control character.
    return parse_config(merged, server, stored=True)


def _check_free_text(key: str, value: str) -> None:
    if key == "name":
        parse_name(value)
    elif key == "tags":
        parse_tags(value)
    elif is_user_key(key):
        parse_user_value(key, value)


def changed_keys(old: ServerConfig, new: ServerConfig) -> list[str]:
    """Keys whose value differs between two configurations (added and removed keys included)."""
    before, after = to_info(old), to_info(new)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def is_live_key(key: str) -> bool:
    """Whether an active server may change this key: name, cpu, persistent, tags, user:*, vnc:password."""
    return key in LIVE_KEYS or key.startswith("user:")


def check_live_set(old: ServerConfig, new: ServerConfig, given: Collection[str] = ()) -> list[str]:
    """The changed keys of a set on an active server; BusyError naming a key it may not change
    (one the client sent, `given`, when possible, rather than a key it changed as a consequence)."""
    changed = changed_keys(old, new)
    refused = [key for key in changed if not is_live_key(key)]
    if refused:
        key = next((k for k in refused if k in given), refused[0])
        raise BusyError(f"{key} cannot change while the server is active; stop it first")
    return changed


def attached_drives(config: ServerConfig) -> dict[str, str]:
    """Device → drive UUID for every attached drive, in bus order."""
    return {slot.device: slot.drive for slot in config.drives}


def referenced_drives(config: ServerConfig) -> list[str]:
    """Every drive UUID the configuration names (attached, then avoid:drives), each once, for the
    service to check the user may use them."""
    return list(dict.fromkeys([*(slot.drive for slot in config.drives), *config.avoid_drives]))


__all__ = [
    "DriveSlot",
    "Nic",
    "ServerConfig",
    "apply_set",
    "attached_drives",
    "changed_keys",
    "check_key",
    "check_live_set",
    "derived_mac",
    "device_order",
    "is_device",
    "is_live_key",
    "parse_config",
    "parse_mac",
    "referenced_drives",
    "to_info",
    "to_props",
    "vcpu_count",
]
