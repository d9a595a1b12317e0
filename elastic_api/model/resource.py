"""Resources (static IPs and VLANs): the record, what a create asks for (ResourceSpec) and a set
changes (ResourceChanges), the pool arithmetic and what a server's configuration asks of them."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from elastic_api.errors import FullError, MissingError
from elastic_api.model.ids import parse_id
from elastic_api.model.server import AddressOnTwoNics, NicAddressNotIPv4, NicOnTwoNetworks, ServerConfig

IP, VLAN = "ip", "vlan"
TYPES = (IP, VLAN)
VLAN_IDS = range(1, 4095)  # 802.1Q's usable VLAN IDs: 0 and 4095 are reserved


@dataclass(frozen=True)
class Resource:
    resource: str  # an IP address, or a VLAN's UUID
    type: str
    owner: str
    name: str = ""
    tags: tuple[str, ...] = ()
    # The client's own keys → values, each key as the client named it (stored as given).
    user_keys: dict[str, str] = field(default_factory=dict)
    created: int = 0  # nanoseconds since the epoch: orders pages
    # A VLAN's number among its owner's VLANs (1-4094, like an 802.1Q tag): what the ECS dialect's
    # `networks` name it by. Given by the store when the VLAN is made (the lowest free), never
    # changed; freed when the VLAN goes. None for IPs.
    vlan_id: int | None = None


@dataclass(frozen=True)
class ResourceSpec:
    """What a valid create asks for: the address or UUID is the server's to choose."""

    name: str = ""
    tags: tuple[str, ...] = ()
    user_keys: dict[str, str] = field(default_factory=dict)  # "" values are dropped


@dataclass(frozen=True)
class ResourceChanges:
    """What a valid set asks for; None means "leave as it is"."""

    name: str | None = None
    tags: tuple[str, ...] | None = None
    user_keys: dict[str, str] = field(default_factory=dict)  # "" removes the key


@dataclass(frozen=True)
class PoolInfo:
    """What an IP resource's info says of the network it sits in (from the operator's pool)."""

    netmask: str
    gateway: str
    nameserver: str


@dataclass(frozen=True)
class Lease:
    """An address an active server's NIC holds: its own IP resource, or (`auto`) one from the pool
    for as long as the server runs."""

    server: str
    nic: int
    mac: str
    ip: str
    auto: bool


def parse_type(text: str) -> str:
    """A resource type from a path; an unknown one is as missing as an unknown command."""
    if text not in TYPES:
        raise MissingError(f"no such resource type: {text[:40]}")
    return text


def parse_ip(text: str) -> str | None:
    """The canonical form of an IPv4 address, or None."""
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        return None


def parse_resource(type_: str, text: str) -> str | None:
    """The canonical ID of a resource of this type (an IPv4 address, or a UUID), or None."""
    return parse_ip(text) if type_ == IP else parse_id(text)


def parse_any_resource(text: str) -> str | None:
    """The canonical ID of a resource of either type (a page marker may name either)."""
    return parse_ip(text) or parse_id(text)


def new_resource(resource: str, type_: str, owner: str, spec: ResourceSpec, *, created: int) -> Resource:
    return Resource(
        resource=resource,
        type=type_,
        owner=owner,
        name=spec.name,
        tags=spec.tags,
        user_keys={k: v for k, v in spec.user_keys.items() if v},
        created=created,
    )


def apply_changes(resource: Resource, changes: ResourceChanges) -> Resource:
    user_keys = dict(resource.user_keys)
    for key, value in changes.user_keys.items():
        if value:
            user_keys[key] = value
        else:
            user_keys.pop(key, None)
    updates: dict[str, object] = {"user_keys": user_keys}
    if changes.name is not None:
        updates["name"] = changes.name
    if changes.tags is not None:
        updates["tags"] = changes.tags
    return dataclasses.replace(resource, **updates)  # type: ignore[arg-type]


def addresses(first: str, last: str) -> Iterator[str]:
    """Every address from first to last, in order."""
    start, end = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    return (str(ipaddress.IPv4Address(n)) for n in range(start, end + 1))


def lowest_free_vlan_id(used: Collection[int]) -> int | None:
    """The lowest VLAN number not in `used`, or None when all 4094 are taken."""
    return next((n for n in VLAN_IDS if n not in used), None)


def first_free(first: str, last: str, used: Collection[str]) -> str | None:
    """The lowest address of the range first-last not in `used`, or None when all are. Looks at
    no more than len(used) + 1 addresses, however large the range."""
    return next((address for address in addresses(first, last) if address not in used), None)


# --- what a server's configuration asks of resources -------------------------------------------


def static_ips(config: ServerConfig) -> list[str]:
    """Each IP resource the configuration names (a NIC's address, then the VNC address), once."""
    named = [nic.dhcp for nic in config.nics if nic.dhcp is not None and nic.dhcp != "auto"]
    if config.vnc is not None and config.vnc != "auto":
        named.append(config.vnc)
    return list(dict.fromkeys(named))


def vlans(config: ServerConfig) -> list[str]:
    """Each VLAN the configuration's NICs are on, once."""
    return list(dict.fromkeys(nic.vlan for nic in config.nics if nic.vlan is not None))


def check_nics(config: ServerConfig) -> None:
    """A ConfigRefusal for NIC wiring no network can give: a NIC both on the public network (an
    address) and on a VLAN, an address that is not IPv4, or one address on two NICs."""
    seen: dict[str, int] = {}
    for nic in config.nics:
        if nic.dhcp is not None and nic.vlan is not None:
            raise NicOnTwoNetworks(nic.index)
        if nic.dhcp is None or nic.dhcp == "auto":
            continue
        if parse_ip(nic.dhcp) is None:
            raise NicAddressNotIPv4(nic.index)
        if nic.dhcp in seen:
            raise AddressOnTwoNics(nic.index, nic.dhcp, seen[nic.dhcp])
        seen[nic.dhcp] = nic.index


class PoolFull(FullError):
    """The IP pool has no address left for a NIC of a server."""

    def __init__(self, nic: int, server: str) -> None:
        super().__init__(f"the IP pool has no free address for NIC {nic} of server {server}")
        self.nic, self.server = nic, server


__all__ = [
    "IP",
    "TYPES",
    "VLAN",
    "Lease",
    "PoolFull",
    "PoolInfo",
    "Resource",
    "ResourceChanges",
    "ResourceSpec",
    "addresses",
    "apply_changes",
    "check_nics",
    "first_free",
    "lowest_free_vlan_id",
    "new_resource",
    "parse_any_resource",
    "parse_ip",
    "parse_resource",
    "parse_type",
    "static_ips",
    "vlans",
]
