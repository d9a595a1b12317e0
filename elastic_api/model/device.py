"""Where a drive sits in a guest: a bus and a position on it, in no dialect's words.

The buses are the guest's hardware: two IDE channels of two units each, one SCSI controller of
eight units, and up to eight virtio block devices. Each dialect names them its own way (the
ElasticHosts codec writes `ide:0:1`, `scsi:0:3`, `block:2`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Bus = Literal["ide", "scsi", "virtio"]
# (controllers, units per controller) of each bus.
SHAPE: dict[str, tuple[int, int]] = {"ide": (2, 2), "scsi": (1, 8), "virtio": (1, 8)}
# A bus's place in the default boot order and in listings.
BUS_ORDER: dict[str, int] = {"ide": 0, "scsi": 1, "virtio": 2}


@dataclass(frozen=True, order=False)
class Device:
    bus: Bus
    controller: int = 0
    unit: int = 0

    def __post_init__(self) -> None:
        if self.bus not in SHAPE:
            raise ValueError(f"no such bus: {self.bus!r}")
        controllers, units = SHAPE[self.bus]
        if not (0 <= self.controller < controllers and 0 <= self.unit < units):
            raise ValueError(f"no such {self.bus} position: {self.controller}:{self.unit}")

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key: bus order (IDE, SCSI, virtio), then controller, then unit."""
        return (BUS_ORDER[self.bus], self.controller, self.unit)

    @property
    def index(self) -> int:
        """The device's number among its bus's devices (IDE 0:1 is 1, 1:0 is 2)."""
        return self.controller * SHAPE[self.bus][1] + self.unit

    @classmethod
    def of_index(cls, bus: Bus, index: int) -> Device:
        units = SHAPE[bus][1]
        return cls(bus, index // units, index % units)
