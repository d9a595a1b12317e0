"""An ECS create's `networks` (model/ecs_networks.py) resolved against the user's VLANs: each
VLAN number to the VLAN resource that carries it."""

from __future__ import annotations

from elastic_api.errors import Invalid
from elastic_api.model.ecs_networks import NetworkRequest
from elastic_api.model.resource import VLAN
from elastic_api.store.base import ResourceStore


async def vlans_for(store: ResourceStore, user: str, networks: tuple[NetworkRequest, ...]) -> tuple[str, ...]:
    """The UUIDs of the user's VLANs the networks name, in order. A number none of the user's
    VLANs has (another user's VLAN included: each user numbers their own) is a 400 naming
    `networks`, before anything is made."""
    wanted = [number for network in networks for number in network.vlan_ids]
    if not wanted:
        return ()
    numbered = {
        r.vlan_id: r.resource for r in await store.list_resources(user, VLAN, None, None) if r.vlan_id is not None
    }
    missing = [number for number in wanted if number not in numbered]
    if missing:
        raise Invalid(
            f"networks: unknown VLAN {missing[0]}: no VLAN of yours has that vlan_id"
            " (make one with the ElasticHosts API, resources/vlan/create; its info shows its vlan_id)"
        )
    return tuple(numbered[number] for number in wanted)
