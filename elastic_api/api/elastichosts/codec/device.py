"""ElasticHosts device names: `ide:B:U` (two IDE channels of two units), `scsi:0:U` (one SCSI
controller of eight units) and `block:N` (eight virtio block devices), each a model Device."""

from __future__ import annotations

import re

from elastic_api.model.device import Device

DEVICE_PATTERN = r"(?:ide:[01]:[01]|scsi:0:[0-7]|block:[0-7])"
_DEVICE = re.compile(f"^{DEVICE_PATTERN}$")


def is_device(name: str) -> bool:
    """A drive device name the protocol knows."""
    return bool(_DEVICE.match(name))


def parse_device(name: str) -> Device | None:
    """The Device a name stands for, or None for a name that is not one of the protocol's."""
    if not _DEVICE.match(name):
        return None
    bus, *numbers = name.split(":")
    if bus == "block":
        return Device.of_index("virtio", int(numbers[0]))
    return Device("ide" if bus == "ide" else "scsi", int(numbers[0]), int(numbers[1]))


def device_name(device: Device) -> str:
    if device.bus == "virtio":
        return f"block:{device.index}"
    return f"{device.bus}:{device.controller}:{device.unit}"
