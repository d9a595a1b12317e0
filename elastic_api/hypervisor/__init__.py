"""Running servers: domain XML, hosts and placement, the libvirt driver and the interface the service uses."""
from __future__ import annotations

from elastic_api.hypervisor.base import DomainStats, DriveStats, EventHandler, HostHandler, Hypervisor

__all__ = ["DomainStats", "DriveStats", "EventHandler", "HostHandler", "Hypervisor"]
