"""A server's configuration as the store keeps it: a versioned JSON of the typed ServerConfig, in
no dialect's words, read back without any dialect's rules (a row written once loads whatever the
rules for new values become). Every store implementation writes this same text."""

from __future__ import annotations

import json
from typing import Any

from elastic_api.model.cloudinit import dump_setup, load_setup
from elastic_api.model.device import Device
from elastic_api.model.server import Boot, DriveSlot, Nic, ServerConfig

# The format's version: a reader refuses what it does not know rather than guess.
VERSION = 1


def _device(device: Device) -> dict[str, Any]:
    return {"bus": device.bus, "controller": device.controller, "unit": device.unit}


def _boot(entry: Boot) -> dict[str, Any]:
    return _device(entry) if isinstance(entry, Device) else {"nic": entry}


def dump(config: ServerConfig) -> str:
    return json.dumps(
        {
            "v": VERSION,
            "name": config.name,
            "cpu": config.cpu,
            "mem": config.mem,
            "smp": config.smp,
            "persistent": config.persistent,
            "drives": [{**_device(slot.device), "drive": slot.drive, "media": slot.media} for slot in config.drives],
            "boot": [_boot(entry) for entry in config.boot],
            "nics": [
                {"index": nic.index, "model": nic.model, "mac": nic.mac, "dhcp": nic.dhcp, "vlan": nic.vlan}
                for nic in config.nics
            ],
            "vnc": config.vnc,
            "vnc_password": config.vnc_password,
            "vnc_tls": config.vnc_tls,
            "tags": list(config.tags),
            "user": dict(config.user),
            "avoid_drives": list(config.avoid_drives),
            "avoid_servers": list(config.avoid_servers),
        }
        # Added within version 1, written only when set: rows without it have no seed.
        | ({} if config.cloudinit is None else {"cloudinit": json.loads(dump_setup(config.cloudinit))})
    )


def _load_device(data: dict[str, Any]) -> Device:
    return Device(data["bus"], int(data["controller"]), int(data["unit"]))


def load(text: str) -> ServerConfig:
    data = json.loads(text)
    if data.get("v") != VERSION:
        raise ValueError(f"server configuration of unknown version {data.get('v')!r}")
    return ServerConfig(
        name=data["name"],
        cpu=int(data["cpu"]),
        mem=int(data["mem"]),
        smp=None if data["smp"] is None else int(data["smp"]),
        persistent=bool(data["persistent"]),
        drives=tuple(DriveSlot(_load_device(d), d["drive"], d["media"]) for d in data["drives"]),
        boot=tuple(int(b["nic"]) if "nic" in b else _load_device(b) for b in data["boot"]),
        nics=tuple(Nic(int(n["index"]), n["model"], n["mac"], n["dhcp"], n["vlan"]) for n in data["nics"]),
        vnc=data["vnc"],
        vnc_password=data["vnc_password"],
        vnc_tls=bool(data["vnc_tls"]),
        tags=tuple(data["tags"]),
        user=tuple(sorted(data["user"].items())),
        avoid_drives=tuple(data["avoid_drives"]),
        avoid_servers=tuple(data["avoid_servers"]),
        cloudinit=None if data.get("cloudinit") is None else load_setup(json.dumps(data["cloudinit"])),
    )
