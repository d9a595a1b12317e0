"""The public address pool of the configuration: its shape and the rules an operator's pool must keep."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any

from elastic_api.errors import ConfigError


@dataclass(frozen=True)
class IpPool:
    """The public addresses IP resources and `auto` leases come from, and the network they sit in.
    The defaults are TEST-NET-2 (RFC 5737): never routed anywhere, so a fresh machine's pool can
    collide with no real network; an operator names real public addresses here."""

    network: str = "198.51.100.0/24"
    # The host's address on the public bridge: the guests' router, and never handed to a guest.
    gateway: str = "198.51.100.1"
    # What guests are told to resolve names with (DHCP option 6).
    nameserver: str = "198.51.100.1"
    # FIRST-LAST, both inside network: the addresses users and `auto` NICs get.
    range: str = "198.51.100.10-198.51.100.254"

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(self.network).netmask)

    @property
    def first(self) -> str:
        return self.range.partition("-")[0].strip()

    @property
    def last(self) -> str:
        return self.range.partition("-")[2].strip()


def parse_ip_pool(value: Any) -> IpPool:
    if not isinstance(value, dict):
        raise ConfigError("ip_pool must be a mapping of network, gateway, nameserver, range")
    known = {f.name for f in dataclasses.fields(IpPool)}
    unknown = set(value) - known
    if unknown:
        raise ConfigError(f"unknown ip_pool key: {sorted(unknown)[0]}")
    pool = IpPool(**{key: str(raw) for key, raw in value.items()})
    check_ip_pool(pool)
    return pool


def check_ip_pool(pool: IpPool) -> None:
    """ConfigError unless the pool is an IPv4 network with the gateway inside it and the range
    inside it, between its network and broadcast addresses, not holding the gateway."""
    try:
        network = ipaddress.IPv4Network(pool.network, strict=True)
    except ValueError:
        raise ConfigError(f"ip_pool.network must be an IPv4 network like 198.51.100.0/24: {pool.network!r}") from None
    if network.prefixlen > 30:
        raise ConfigError("ip_pool.network must be a /30 or larger: it holds the gateway and guests")

    def address(key: str, text: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(text.strip())
        except ValueError:
            raise ConfigError(f"ip_pool.{key} must be an IPv4 address: {text!r}") from None

    gateway = address("gateway", pool.gateway)
    address("nameserver", pool.nameserver)
    if "-" not in pool.range:
        raise ConfigError(f"ip_pool.range must be FIRST-LAST: {pool.range!r}")
    first, last = address("range", pool.first), address("range", pool.last)
    usable = (network.network_address, network.broadcast_address)
    if gateway not in network or gateway in usable:
        raise ConfigError(f"ip_pool.gateway {gateway} must be a host address in {network}")
    if first > last:
        raise ConfigError(f"ip_pool.range starts after it ends: {pool.range}")
    if not (usable[0] < first and last < usable[1]):
        raise ConfigError(
            f"ip_pool.range {pool.range} must lie inside {network}, between its network and broadcast addresses"
        )
    if first <= gateway <= last:
        raise ConfigError(f"ip_pool.range {pool.range} must not hold the gateway {gateway}")
