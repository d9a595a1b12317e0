"""Running servers: domain XML, hosts and placement, the libvirt driver and the interface the service uses."""

from __future__ import annotations

from elastic_api.hypervisor.base import (
    DomainSample,
    DomainStats,
    DriveBytes,
    DriveStats,
    EventHandler,
    HostHandler,
    Hypervisor,
)

__all__ = ["DomainSample", "DomainStats", "DriveBytes", "DriveStats", "EventHandler", "HostHandler", "Hypervisor"]
