"""A server as stored: its validated configuration and where and since when it runs."""

from __future__ import annotations

from dataclasses import dataclass

from elastic_api.model.device import Device
from elastic_api.model.server import ServerConfig

ACTIVE, STOPPED = "active", "stopped"


@dataclass(frozen=True)
class ServerRecord:
    server: str
    owner: str
    config: ServerConfig
    created: int  # nanoseconds since the epoch: orders pages
    status: str = STOPPED
    host: str | None = None  # the libvirt host it runs on, while active
    started: int | None = None  # epoch seconds, UTC, while active


@dataclass(frozen=True)
class Claim:
    """A drive an active server holds on one of its devices."""

    device: Device
    drive: str
