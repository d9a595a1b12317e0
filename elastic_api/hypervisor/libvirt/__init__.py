"""The hypervisor on libvirt, split by concept: hosts (connections, calls, room), events (their
delivery), loop (libvirt's event loop on asyncio), networks, secrets, domains and stats; driver
composes them into LibvirtHypervisor."""

from __future__ import annotations

from elastic_api.hypervisor.libvirt.driver import LibvirtHypervisor

__all__ = ["LibvirtHypervisor"]
