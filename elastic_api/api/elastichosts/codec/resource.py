"""ElasticHosts resource keys: a create or set's properties parsed into a ResourceSpec or
ResourceChanges, a resource rendered as the info a client sees."""

from __future__ import annotations

from elastic_api.api.elastichosts.codec.fields import is_user_key
from elastic_api.api.elastichosts.properties import Info, Props
from elastic_api.errors import UsageError
from elastic_api.model.fields import parse_name, parse_tags, parse_user_value
from elastic_api.model.resource import IP, PoolInfo, Resource, ResourceChanges, ResourceSpec

# Keys the server reports but a client never sets.
READ_ONLY = frozenset({"resource", "type", "user", "netmask", "gateway", "nameserver", "vlan_id"})
SETTABLE = frozenset({"name", "tags"})


def _values(props: Props) -> tuple[dict[str, object], dict[str, str]]:
    """Each key's value, checked in the order given: the first bad key is named in the error.
    Create and set take the same keys: the address or UUID is the server's to choose."""
    values: dict[str, object] = {}
    user_keys: dict[str, str] = {}
    for key, value in props.items():
        if is_user_key(key):
            user_keys[key] = parse_user_value(key, value)
        elif key in READ_ONLY:
            raise UsageError(f"{key} is read-only")
        elif key not in SETTABLE:
            raise UsageError(f"unknown key: {key}")
        elif key == "name":
            values["name"] = parse_name(value, required=False)
        elif key == "tags":
            values["tags"] = parse_tags(value)
    return values, user_keys


def parse_spec(props: Props) -> ResourceSpec:
    values, user_keys = _values(props)
    return ResourceSpec(user_keys=user_keys, **values)  # type: ignore[arg-type]


def parse_changes(props: Props) -> ResourceChanges:
    values, user_keys = _values(props)
    return ResourceChanges(user_keys=user_keys, **values)  # type: ignore[arg-type]


def to_info(resource: Resource, pool: PoolInfo | None = None) -> Info:
    """Info keys; an IP resource also says its netmask, gateway and nameserver (from `pool`)."""
    info: Info = {
        "resource": resource.resource,
        "type": resource.type,
        "user": resource.owner,
        "name": resource.name,
        "tags": list(resource.tags),
    }
    if resource.type == IP and pool is not None:
        info.update(netmask=pool.netmask, gateway=pool.gateway, nameserver=pool.nameserver)
    if resource.vlan_id is not None:
        info["vlan_id"] = str(resource.vlan_id)  # the number ECS `networks` name the VLAN by
    info.update(sorted(resource.user_keys.items()))
    return info
