"""A server as stored: its validated configuration and where and since when it runs."""
from __future__ import annotations

from dataclasses import dataclass

from elastic_api.model.properties import Info
from elastic_api.model.server import ServerConfig, to_info

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

    device: str
    drive: str


def to_server_info(record: ServerRecord) -> Info:
    info: Info = {"server": record.server, "user": record.owner, "status": record.status}
    info.update(to_info(record.config))
    if record.started is not None:
        info["started"] = record.started
    return info
