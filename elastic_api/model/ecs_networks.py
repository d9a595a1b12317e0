"""`networks` on an ECS create (ECS.md §4): `[{"name": str, "vlans": [{"vlan_id": int, "pvid":
bool?} | {"vlans": "a-b"}]}]`, parsed into the VLAN numbers each network asks for, and the NICs
the engine's server gets for them. Pure.

How it maps onto the engine (which gives each NIC exactly one VLAN, untagged, on an isolated
bridge of its own; hypervisor/network.py):
- a VLAN is named by its `vlan_id`, its number among the user's VLAN resources (model/resource.py:
  1-4094, given when the VLAN is made, shown in the ElasticHosts info as `vlan_id`);
- every VLAN a network lists, and every number of a range `a-b`, becomes one virtio NIC of the
  server on that VLAN, after NIC 0 (the public network) in the order given. Seeweb's network
  is one NIC carrying several VLANs tagged (a trunk, `pvid` the untagged one); here the guest
  sees the same VLANs as one NIC each, all untagged, so `pvid` changes nothing (it is checked:
  a bool, at most one true per network, as a trunk has one native VLAN);
- a VLAN may be named once in a create (two NICs on one bridge would only loop), and the NICs
  fit the engine's limit (model/server.py MAX_NICS, NIC 0 included);
- `name` is the client's label for the network: checked (one line, 1-64 characters) and not kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from elastic_api.errors import Invalid
from elastic_api.model.server import MAX_NICS, Nic

VLAN_RANGE = (1, 4094)  # 802.1Q's usable VLAN IDs
MAX_NAME = 64
# NIC 0 is the public network's: the rest of the engine's NICs may be on VLANs.
MAX_VLAN_NICS = MAX_NICS - 1
_RANGE = re.compile(r"^([0-9]{1,4})-([0-9]{1,4})$")


@dataclass(frozen=True)
class NetworkRequest:
    name: str
    vlan_ids: tuple[int, ...]  # the VLAN numbers asked for, in order


def _vlan_id(value: Any, where: str) -> int:
    low, high = VLAN_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid(f"{where}.vlan_id must be a whole number from {low} to {high}")
    return value


def _range(value: Any, where: str) -> range:
    low, high = VLAN_RANGE
    match = _RANGE.match(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(f"{where}.vlans must be a range a-b of VLAN numbers")
    first, last = int(match.group(1)), int(match.group(2))
    if not low <= first < last <= high:
        raise Invalid(f"{where}.vlans must be a range a-b with {low} <= a < b <= {high}")
    return range(first, last + 1)


def _entry(value: Any, where: str) -> tuple[list[int], bool]:
    """One item of a network's `vlans`: its VLAN numbers, and whether it is the pvid."""
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be an object with vlan_id (and pvid) or vlans")
    unknown = set(value) - {"vlan_id", "pvid", "vlans"}
    if unknown:
        raise Invalid(f"{where}: unknown field {sorted(unknown)[0][:40]}")
    pvid = value.get("pvid")
    if pvid is not None and not isinstance(pvid, bool):
        raise Invalid(f"{where}.pvid must be true or false")
    single, many = value.get("vlan_id"), value.get("vlans")  # null is "not given" (ecsapi sends all three)
    if (single is None) == (many is None):
        raise Invalid(f"{where} must give one of vlan_id or vlans")
    if single is not None:
        return [_vlan_id(single, where)], bool(pvid)
    numbers = _range(many, where)
    if len(numbers) > MAX_VLAN_NICS:
        raise Invalid(f"{where}.vlans: a server has at most {MAX_VLAN_NICS} NICs on VLANs, one per VLAN")
    return list(numbers), bool(pvid)


def parse_networks(value: Any) -> tuple[NetworkRequest, ...]:
    """The networks a create asks for; Invalid naming `networks` (and the item) when malformed,
    when a VLAN is named twice, or when there are more VLANs than a server has NICs for them."""
    if not isinstance(value, list):
        raise Invalid("networks must be a list of {name, vlans}")
    found: list[NetworkRequest] = []
    seen: set[int] = set()
    for i, network in enumerate(value):
        where = f"networks[{i}]"
        if not isinstance(network, dict):
            raise Invalid(f"{where} must be an object with name and vlans")
        unknown = set(network) - {"name", "vlans"}
        if unknown:
            raise Invalid(f"{where}: unknown field {sorted(unknown)[0][:40]}")
        name = network.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_NAME or any(ord(c) < 32 for c in name):
            raise Invalid(f"{where}.name must be one line of 1 to {MAX_NAME} characters")
        entries = network.get("vlans")
        if not isinstance(entries, list) or not entries:
            raise Invalid(f"{where}.vlans must be a list of at least one VLAN")
        numbers: list[int] = []
        pvids = 0
        for j, entry in enumerate(entries):
            these, pvid = _entry(entry, f"{where}.vlans[{j}]")
            pvids += pvid
            for number in these:
                if number in seen:
                    raise Invalid(f"{where}: VLAN {number} is named twice (a VLAN gets one NIC)")
                seen.add(number)
                numbers.append(number)
            if len(seen) > MAX_VLAN_NICS:
                raise Invalid(f"networks: a server has at most {MAX_VLAN_NICS} NICs on VLANs, one per VLAN")
        if pvids > 1:
            raise Invalid(f"{where}: at most one VLAN may be the pvid")
        found.append(NetworkRequest(name.strip(), tuple(numbers)))
    return tuple(found)


def vlan_nics(vlans: tuple[str, ...]) -> tuple[Nic, ...]:
    """The engine's NICs for a server's VLANs (their UUIDs, in order): virtio, from NIC 1 on."""
    return tuple(Nic(index, "virtio", vlan=vlan) for index, vlan in enumerate(vlans, 1))
