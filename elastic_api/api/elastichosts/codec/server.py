"""ElasticHosts server keys: props parsed into a ServerConfig (create) or a ServerPatch (set), a
server rendered back as info, and the model's refusals said with the wire's key names.

The messages are the protocol's: each names the key a client sent. Rules across fields are the
model's (elastic_api.model.server); server_errors says their refusals in wire words."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import TypeVar

from elastic_api.api.elastichosts.codec import cloudinit
from elastic_api.api.elastichosts.codec.device import DEVICE_PATTERN, device_name, parse_device
from elastic_api.api.elastichosts.codec.stats import stats_info
from elastic_api.api.elastichosts.codec.server_errors import (
    boot_name,
    field_key,
    wire_errors,
    wire_live_refusal,
    wire_refusal,
)
from elastic_api.errors import UsageError
from elastic_api.model import server as model
from elastic_api.model.device import Device
from elastic_api.api.elastichosts.codec.fields import USER_PREFIX, is_user_key
from elastic_api.model.fields import parse_name, parse_tags, parse_user_value
from elastic_api.model.ids import parse_id
from elastic_api.api.elastichosts.properties import Info, Props, Value
from elastic_api.model.server import MAX_NICS, MAX_VNC_PASSWORD, Boot, DriveSlot, Nic, ServerConfig
from elastic_api.model.server_patch import KEEP, DriveChange, Keep, NicChange, ServerPatch
from elastic_api.model.server_record import ServerRecord
from elastic_api.service.servers import ServerView
from elastic_api.model.units import parse_count

T = TypeVar("T")

# Keys whose value is a list of words in info (JSON arrays, space-separated in text).
MULTI_KEYS = frozenset({"tags", "boot", "avoid:drives", "avoid:servers"})

_DEVICE_MEDIA = re.compile(f"^({DEVICE_PATTERN}):media$")
_NIC_KEY = re.compile(r"^nic:([0-9]+):(model|dhcp|vlan|mac)$")
_NIC_DEVICE = re.compile(r"^nic:([0-9]+)$")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_SIMPLE_KEYS = frozenset(
    {
        "name",
        "cpu",
        "smp",
        "mem",
        "persistent",
        "boot",
        "vnc",
        "vnc:password",
        "vnc:tls",
        "tags",
        "avoid:drives",
        "avoid:servers",
    }
)

# --- values ----------------------------------------------------------------------------------


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


def _smp(value: str) -> int | None:
    text = value.strip()
    return None if not text or text.lower() == "auto" else parse_count(text, "smp", minimum=1, maximum=model.SMP_MAX)


def _vnc_password(value: str) -> str:
    password = value.strip()
    if len(password) > MAX_VNC_PASSWORD:
        raise UsageError(f"vnc:password must be at most {MAX_VNC_PASSWORD} characters")
    if not all(" " <= c <= "~" for c in password):
        raise UsageError("vnc:password must be printable ASCII")
    return password


def _vnc_tls(value: str) -> bool:
    tls = value.strip().lower()
    if tls not in ("on", "off"):
        raise UsageError("vnc:tls must be on or off")
    return tls == "on"


def _nic_index(key: str, text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text.startswith("0")) or int(text) >= MAX_NICS:
        raise UsageError(f"unknown key: {key} (NICs are nic:0 to nic:{MAX_NICS - 1})")
    return int(text)


def check_key(key: str) -> None:
    """UsageError unless key is a server configuration key."""
    if key in _SIMPLE_KEYS or parse_device(key) or _DEVICE_MEDIA.match(key):
        return
    if is_user_key(key) or key in cloudinit.KEYS:
        return
    nic = _NIC_KEY.match(key)
    if nic:
        _nic_index(key, nic.group(1))
        return
    raise UsageError(f"unknown key: {key}")


def _boot_entry(word: str) -> Boot:
    """A `boot` word as a device: UsageError for one that names no device, or a NIC in a spelling
    no NIC key has (`nic:01`), which cannot be a configured one."""
    name = word.lower()
    device = parse_device(name)
    if device is not None:
        return device
    nic = _NIC_DEVICE.match(name)
    if not nic:
        raise UsageError(f"boot: {word[:40]!r} is not a device name")
    if str(int(nic.group(1))) != nic.group(1):
        raise UsageError(f"boot: {name} is not a configured device")
    return int(nic.group(1))


# --- create: a whole configuration ---------------------------------------------------------------


def parse_config(props: Mapping[str, str], server: str | None = None) -> ServerConfig:
    """A whole configuration (a create). Every key must be known and every value valid; an empty
    value means "absent". Raises UsageError naming the first bad key. NICs given no MAC get theirs
    from the server's UUID: now when `server` is given, else when the server has one (model.settle)."""
    config = _parse(props, stored=False)
    return config if server is None else model.settle(config, server)


def _parse(props: Mapping[str, str], *, stored: bool) -> ServerConfig:
    """`stored`: the free text (name, tags, user:*) comes from a stored configuration, which may
    predate the control-character rule, and is taken as it is."""
    given = {}
    for key, value in props.items():
        check_key(key)
        if value.strip():
            given[key] = value
    for required in ("name", "cpu", "mem"):
        if required not in given:
            raise UsageError(f"{required} is required")
    with wire_errors():
        name = given["name"].strip() if stored else parse_name(given["name"])
        cpu = parse_count(given["cpu"], "cpu", minimum=model.CPU_MIN_MHZ, maximum=model.CPU_MAX_MHZ)
        mem = parse_count(given["mem"], "mem", minimum=model.MEM_MIN_MB, maximum=model.MEM_MAX_MB)
        smp = _smp(given.get("smp", "auto"))
        persistent = _bool("persistent", given["persistent"]) if "persistent" in given else False
        drives = _drives(given)
        nics = _nics(given)
        boot: list[Boot] = []
        for word in given.get("boot", "").split():
            boot.append(_boot_entry(word))
            model.check_boot(boot, drives, nics)
        config = ServerConfig(
            name=name,
            cpu=cpu,
            mem=mem,
            smp=smp,
            persistent=persistent,
            drives=drives,
            boot=tuple(boot),
            nics=nics,
            vnc=_ip_or_auto("vnc", given["vnc"]) if "vnc" in given else None,
            vnc_password=_vnc_password(given["vnc:password"]) if "vnc:password" in given else None,
            vnc_tls=_vnc_tls(given["vnc:tls"]) if "vnc:tls" in given else False,
            user=tuple(
                sorted(
                    (key[len(USER_PREFIX) :], value if stored else parse_user_value(key, value))
                    for key, value in given.items()
                    if is_user_key(key)
                )
            ),
            tags=tuple(dict.fromkeys(given.get("tags", "").split())) if stored else parse_tags(given.get("tags", "")),
            avoid_drives=_uuid_list("avoid:drives", given.get("avoid:drives", "")),
            avoid_servers=_uuid_list("avoid:servers", given.get("avoid:servers", "")),
            cloudinit=cloudinit.parse_setup(given),
        )
        return model.validate(config)


def _drives(given: Mapping[str, str]) -> tuple[DriveSlot, ...]:
    slots: list[DriveSlot] = []
    for key, value in given.items():
        media_key = _DEVICE_MEDIA.match(key)
        if media_key and media_key.group(1) not in given:
            raise UsageError(f"{key} given without {media_key.group(1)}")
        device = parse_device(key)
        if device is None:
            continue
        slots.append(DriveSlot(device, _uuid(key, value), given.get(f"{key}:media", "disk").strip().lower()))
        model.check_drives(slots)
    return tuple(slots)


def _nics(given: Mapping[str, str]) -> tuple[Nic, ...]:
    fields: dict[int, dict[str, str]] = {}
    for key, value in given.items():
        match = _NIC_KEY.match(key)
        if match:
            fields.setdefault(_nic_index(key, match.group(1)), {})[match.group(2)] = value.strip()
    nics = []
    for index, nic in sorted(fields.items()):
        if "model" not in nic:
            raise UsageError(f"nic:{index}:{sorted(nic)[0]} given without nic:{index}:model")
        model.check_nic(Nic(index, nic["model"].lower()))
        nics.append(
            Nic(
                index,
                nic["model"].lower(),
                mac=parse_mac(f"nic:{index}:mac", nic["mac"]) if "mac" in nic else None,
                dhcp=_ip_or_auto(f"nic:{index}:dhcp", nic["dhcp"]) if "dhcp" in nic else None,
                vlan=_uuid(f"nic:{index}:vlan", nic["vlan"]) if "vlan" in nic else None,
            )
        )
    model.check_macs(nics)
    return tuple(nics)


# --- set: a change ---------------------------------------------------------------------------


def _check_free_text(key: str, value: str) -> None:
    if key == "name":
        parse_name(value)
    elif key == "tags":
        parse_tags(value)
    elif is_user_key(key):
        parse_user_value(key, value)


def _check_keys(props: Mapping[str, str]) -> None:
    """What a set's keys are checked for before anything else: known keys, and free text given."""
    for key, text in props.items():
        check_key(key)
        if text.strip():
            _check_free_text(key, text)


def parse_patch(props: Mapping[str, str]) -> ServerPatch:
    """What a `set` changes: given keys replace the old values, other keys stay. An empty value
    removes an optional key (a device with its media, a NIC with all its keys); name, cpu and mem
    cannot be removed. The rules across fields are checked when the patch meets the server's
    configuration (model.apply_patch, said with wire keys by wire_refusal); which bad key the
    protocol names first can depend on that configuration (check_set says it)."""
    _check_keys(props)
    for required in ("name", "cpu", "mem"):
        if required in props and not props[required].strip():
            raise UsageError(f"{required} is required")

    def value(key: str, parse: Callable[[str], T], removed: T) -> T | Keep:
        """KEEP for a key not given, `removed` for one given empty, else the parsed value."""
        if key not in props:
            return KEEP
        return parse(props[key]) if props[key].strip() else removed

    name = value("name", parse_name, "")
    cpu = value("cpu", lambda v: parse_count(v, "cpu", minimum=model.CPU_MIN_MHZ, maximum=model.CPU_MAX_MHZ), 0)
    mem = value("mem", lambda v: parse_count(v, "mem", minimum=model.MEM_MIN_MB, maximum=model.MEM_MAX_MB), 0)
    smp = value("smp", _smp, None)
    persistent = value("persistent", lambda v: _bool("persistent", v), False)
    drives: dict[Device, DriveChange] = {}
    # Devices in the order their keys came, those given only a media after: a merge lists them so.
    for key in sorted(props, key=lambda k: _DEVICE_MEDIA.match(k) is not None):
        media_key = _DEVICE_MEDIA.match(key)
        device = parse_device(media_key.group(1) if media_key else key)
        if device is None:
            continue
        change, given = drives.get(device, DriveChange()), props[key].strip()
        if media_key:
            drives[device] = replace(change, media=given.lower() or None)
        else:
            drives[device] = replace(change, drive=_uuid(key, given) if given else None)
    nics: dict[int, NicChange] = {}
    for key in props:
        match = _NIC_KEY.match(key)
        if match:
            index, part = int(match.group(1)), match.group(2)
            parsed = value(key, partial(_nic_part, key, part), None)
            nics[index] = replace(nics.get(index, NicChange()), **{part: parsed})
    return ServerPatch(
        name=name,
        cpu=cpu,
        mem=mem,
        smp=smp,
        persistent=persistent,
        drives=drives,
        nics=dict(sorted(nics.items())),
        boot=value("boot", lambda v: tuple(_boot_entry(word) for word in v.split()), ()),
        vnc=value("vnc", lambda v: _ip_or_auto("vnc", v), None),
        vnc_password=value("vnc:password", _vnc_password, None),
        vnc_tls=value("vnc:tls", _vnc_tls, False),
        user={
            key[len(USER_PREFIX) :]: (text if text.strip() else None) for key, text in props.items() if is_user_key(key)
        },
        tags=value("tags", parse_tags, ()),
        avoid_drives=value("avoid:drives", lambda v: _uuid_list("avoid:drives", v), ()),
        avoid_servers=value("avoid:servers", lambda v: _uuid_list("avoid:servers", v), ()),
        cloudinit=cloudinit.parse_change(props),
    )


def _removed_with(key: str) -> tuple[str, ...]:
    """Keys that go when `key` is removed: a device's media, all of a NIC's keys with its model,
    or the seed's parts with `cloudinit`."""
    if parse_device(key):
        return (f"{key}:media",)
    nic = _NIC_KEY.match(key)
    if nic and nic.group(2) == "model":
        return tuple(f"nic:{nic.group(1)}:{part}" for part in ("dhcp", "vlan", "mac"))
    if key == cloudinit.SWITCH:
        return tuple(sorted(cloudinit.KEYS - {key}))
    return ()


def check_set(config: ServerConfig, props: Mapping[str, str]) -> ServerConfig:
    """The error the protocol names first for a `set` of `props` (checked by parse_patch) on a
    server configured so, if any: the keys merged into the configuration's and read as a whole.
    The patch alone cannot say it: whether `nic:0:dhcp x` is a bad address or a key given without
    `nic:0:model` depends on the server, and the protocol names the second. The service runs this
    under the server's lock, before it applies the patch (ServerService.set's `check`). Returns
    the configuration so read, which is what model.apply_patch makes of parse_patch(props) (but
    for the MACs of NICs it adds, derived once the server's UUID is at hand)."""
    _check_keys(props)
    merged = to_props(config)
    for key, value in props.items():
        if value.strip():
            merged[key] = value
            continue
        merged.pop(key, None)
        for dependent in _removed_with(key):
            if dependent not in props:
                merged.pop(dependent, None)
    # What was stored before the free-text rule stays as it is: a set of `cpu` still works on a
    # server whose old name holds a control character (the text given was checked by parse_patch).
    return _parse(merged, stored=True)


def _nic_part(key: str, part: str, value: str) -> str:
    if part == "model":
        return value.strip().lower()
    if part == "mac":
        return parse_mac(key, value)
    if part == "dhcp":
        return _ip_or_auto(key, value)
    return _uuid(key, value)


# --- rendering -------------------------------------------------------------------------------


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
        info[device_name(slot.device)] = slot.drive
        info[f"{device_name(slot.device)}:media"] = slot.media
    if config.boot:
        info["boot"] = [boot_name(entry) for entry in config.boot]
    for nic in config.nics:
        info[f"nic:{nic.index}:model"] = nic.model
        if nic.dhcp is not None:
            info[f"nic:{nic.index}:dhcp"] = nic.dhcp
        if nic.vlan is not None:
            info[f"nic:{nic.index}:vlan"] = nic.vlan
        if nic.mac is not None:
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
        info[USER_PREFIX + key] = value
    if config.avoid_drives:
        info["avoid:drives"] = list(config.avoid_drives)
    if config.avoid_servers:
        info["avoid:servers"] = list(config.avoid_servers)
    info.update(cloudinit.info(config.cloudinit))
    return info


def _as_prop(value: Value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def to_props(config: ServerConfig) -> Props:
    """The configuration as the string props it would be parsed from (the inverse of parse_config)."""
    return {key: _as_prop(value) for key, value in to_info(config).items()}


def record_info(record: ServerRecord) -> Info:
    """A server as `servers list` and `info` show it, without what only a running guest has."""
    info: Info = {"server": record.server, "user": record.owner, "status": record.status}
    info.update(to_info(record.config))
    if record.started is not None:
        info["started"] = record.started
    return info


def view_info(view: ServerView) -> Info:
    """A server's info: its record, then for a running one its addresses (`nic:N:dhcp:ip`), its
    counters and where its VNC display listens."""
    info = record_info(view.record)
    for lease in view.leases:
        info[f"nic:{lease.nic}:dhcp:ip"] = lease.ip
    if view.stats is not None:
        info.update(stats_info(view.stats))
    if view.vnc_ip is not None:
        info["vnc:ip"] = view.vnc_ip
    return info


__all__ = [
    "MULTI_KEYS",
    "boot_name",
    "check_key",
    "check_set",
    "field_key",
    "parse_config",
    "parse_mac",
    "parse_patch",
    "record_info",
    "to_info",
    "to_props",
    "view_info",
    "wire_errors",
    "wire_live_refusal",
    "wire_refusal",
]
