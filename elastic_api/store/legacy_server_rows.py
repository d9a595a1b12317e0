"""A frozen reader of the server rows this program wrote before version 1 of store.server_rows:
the configuration as the ElasticHosts props it was parsed from (`{"name": "web", "cpu": "2000",
"ide:0:0": "<uuid>", "ide:0:0:media": "disk", "nic:0:model": "e1000", ...}`).

The one place below api/ that knows wire keys, allowed as such by the lead: it reads our own old
rows, for the migration that rewrites them, and must never change (those rows never will). It
checks nothing the old writer already checked: every row it reads was valid when written, and
later rules must not make it unreadable."""

from __future__ import annotations

import re
from collections.abc import Mapping

from elastic_api.model.device import Device
from elastic_api.model.server import Boot, DriveSlot, Nic, ServerConfig

_DEVICE = re.compile(r"^(ide|scsi):([0-9]):([0-9])$|^block:([0-9])$")
_NIC = re.compile(r"^nic:([0-9]+)(?::(model|dhcp|vlan|mac))?$")


def _device(name: str) -> Device | None:
    match = _DEVICE.match(name)
    if match is None:
        return None
    if match.group(4) is not None:
        return Device.of_index("virtio", int(match.group(4)))
    return Device("ide" if match.group(1) == "ide" else "scsi", int(match.group(2)), int(match.group(3)))


def _boot(word: str) -> Boot:
    device = _device(word)
    if device is not None:
        return device
    nic = _NIC.match(word)
    if nic is None or nic.group(2) is not None:
        raise ValueError(f"old server row: boot names no device: {word!r}")
    return int(nic.group(1))


def read(props: Mapping[str, str]) -> ServerConfig:
    """The configuration an old row holds."""
    given = {key: value for key, value in props.items() if value.strip()}
    drives = []
    nics: dict[int, dict[str, str]] = {}
    for key, value in given.items():
        device = _device(key)
        if device is not None:
            drives.append(DriveSlot(device, value.strip().lower(), given.get(f"{key}:media", "disk").strip().lower()))
        nic = _NIC.match(key)
        if nic is not None and nic.group(2) is not None:
            nics.setdefault(int(nic.group(1)), {})[nic.group(2)] = value.strip()
    smp = given.get("smp", "auto").strip().lower()
    return ServerConfig(
        name=given.get("name", "").strip(),
        cpu=int(given["cpu"]),
        mem=int(given["mem"]),
        smp=None if smp == "auto" else int(smp),
        persistent=given.get("persistent", "false").strip().lower() == "true",
        drives=tuple(sorted(drives, key=lambda slot: slot.device.order)),
        boot=tuple(_boot(word.lower()) for word in given.get("boot", "").split()),
        nics=tuple(
            Nic(index, parts["model"].lower(), parts.get("mac"), parts.get("dhcp"), parts.get("vlan"))
            for index, parts in sorted(nics.items())
            if "model" in parts
        ),
        vnc=given["vnc"].strip() if "vnc" in given else None,
        vnc_password=given["vnc:password"].strip() if "vnc:password" in given else None,
        vnc_tls=given.get("vnc:tls", "off").strip().lower() == "on",
        tags=tuple(dict.fromkeys(given.get("tags", "").split())),
        user=tuple(sorted((key[len("user:") :], value) for key, value in given.items() if key.startswith("user:"))),
        avoid_drives=tuple(dict.fromkeys(given.get("avoid:drives", "").split())),
        avoid_servers=tuple(dict.fromkeys(given.get("avoid:servers", "").split())),
    )
