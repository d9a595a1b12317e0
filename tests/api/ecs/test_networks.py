"""`networks` on an ECS create, in-process on the libvirt test driver: VLANs named by their
`vlan_id` (shown in the ElasticHosts info) become the engine server's NICs 1, 2 …; unknown and
another user's VLANs, and malformed shapes, are 400s naming `networks` with nothing made."""

from __future__ import annotations

from typing import Any

from elastic_api.app import SERVICES
from tests.api.ecs.conftest import Ecs, assert_error
from tests.api.ecs.test_servers import booted, image  # noqa: F401  (image is a fixture)

BASE = {"plan": "ECS1", "image": "tiny-os-1", "location": "local", "notes": "n"}


async def make_vlan(ecs: Ecs) -> dict[str, Any]:
    reply = await ecs.api.call("/resources/vlan/create", {}, as_json=True)
    assert reply.status == 200, reply.text
    return reply.json


async def nics(ecs: Ecs, name: str) -> dict[int, str | None]:
    server = (await ecs.get(f"/servers/{name}")).json["server"]
    assert server["status"] == "Booted"
    services = ecs.client.app[SERVICES]
    row = await services.ecs.get(ecs.user, None, name)
    assert row.server is not None
    record = await services.servers.get(ecs.user, row.server)
    return {nic.index: nic.vlan for nic in record.config.nics}


async def test_vlans_are_numbered_and_become_nics(ecs_alice: Ecs, image: str) -> None:  # noqa: F811
    first, second, third = [await make_vlan(ecs_alice) for _ in range(3)]
    assert [v["vlan_id"] for v in (first, second, third)] == ["1", "2", "3"]
    # The number is the store's to give: read-only in the ElasticHosts dialect.
    for path in ("/resources/vlan/create", f"/resources/vlan/{first['resource']}/set"):
        refused = await ecs_alice.api.call(path, {"vlan_id": "9"})
        assert refused.status == 400 and "read-only" in refused.text, refused.text
    info = await ecs_alice.api.get(f"/resources/vlan/{first['resource']}/info", as_json=True)
    assert info.json["vlan_id"] == "1"
    # ecsapi's shape: every field of a VLAN item, nulls for what is not given.
    name = await booted(
        ecs_alice,
        networks=[
            {"name": "lan", "vlans": [{"vlan_id": 3, "pvid": True, "vlans": None}]},
            {"name": "trunk", "vlans": [{"vlan_id": None, "pvid": None, "vlans": "1-2"}]},
        ],
    )
    assert await nics(ecs_alice, name) == {0: None, 1: third["resource"], 2: first["resource"], 3: second["resource"]}
    # The server holds its VLANs: the other dialect will not destroy one under it.
    reply = await ecs_alice.api.call(f"/resources/vlan/{first['resource']}/destroy")
    assert reply.status == 409
    plain = await booted(ecs_alice)
    assert await nics(ecs_alice, plain) == {0: None}


async def test_unknown_and_other_users_vlans_are_400_and_make_nothing(
    ecs_alice: Ecs,
    ecs_bob: Ecs,
    image: str,  # noqa: F811
) -> None:
    await make_vlan(ecs_alice)
    for ecs, networks, words in (
        (ecs_alice, [{"name": "n", "vlans": [{"vlan_id": 2}]}], "networks: unknown VLAN 2"),
        (ecs_alice, [{"name": "n", "vlans": [{"vlans": "1-2"}]}], "networks: unknown VLAN 2"),
        (ecs_bob, [{"name": "n", "vlans": [{"vlan_id": 1}]}], "networks: unknown VLAN 1"),  # alice's number 1
        (ecs_alice, [{"name": "n", "vlans": [{"vlans": "2-1"}]}], "1 <= a < b <= 4094"),
        (ecs_alice, [{"name": "n", "vlans": [{"vlan_id": 5000}]}], "from 1 to 4094"),
        (ecs_alice, [{"name": "n", "vlans": [{"vlan_id": 1}, {"vlan_id": 1}]}], "named twice"),
        (ecs_alice, {"name": "n"}, "networks must be a list"),
    ):
        body = assert_error(await ecs.post("/servers", {**BASE, "networks": networks}), 400)
        assert words in body["message"], body
    for ecs in (ecs_alice, ecs_bob):
        assert (await ecs.get("/servers")).json["count"] == 0
        assert (await ecs.get("/actions")).json["total_actions"] == 0
