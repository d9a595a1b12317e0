"""A server as stored: its validated configuration and where and since when it runs; and a
server as shown: the record with what only a running guest has."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from elastic_api.model.device import Device
from elastic_api.model.resource import Lease
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


@dataclass(frozen=True)
class ServerView:
    """A server as a client sees it: the record, and for a running one the addresses its NICs
    hold, the hypervisor's counters (opaque here: each dialect renders them) and the address its
    VNC display listens on."""

    record: ServerRecord
    leases: tuple[Lease, ...] = ()
    stats: Mapping[str, int] | None = None
    vnc_ip: str | None = None
