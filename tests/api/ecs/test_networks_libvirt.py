"""`networks` on an ECS create on the real libvirtd (qemu:///system), through ecsapi 0.4.0: the
VLAN named by its `vlan_id` becomes NIC 1 of a real running guest, on that VLAN's isolated bridge,
as the domain's own XML shows; unknown VLANs and bad ranges are refused by the server with
nothing made. Networks have this test's random prefix (test_resources_libvirt.py) and go with it.
No packet is sent to the guest: only XML and the API are checked."""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest

os.environ["ECSAPI_ENV_FILE"] = "/dev/null"  # a stray ./.env must not steer the client

import ecsapi  # noqa: E402
from ecsapi import ServerCreateRequest, ServerCreateRequestNetwork, ServerCreateRequestNetworkVlan  # noqa: E402
from ecsapi.errors import ClientError  # noqa: E402

from elastic_api.app import SERVICES  # noqa: E402
from elastic_api.config import Config, HostConfig  # noqa: E402
from elastic_api.hypervisor.network import vlan_bridge  # noqa: E402
from elastic_api.model.catalogue import Plan  # noqa: E402
from tests.api.test_resources_libvirt import network_xml, prefix, random_pool, virsh  # noqa: E402, F401
from tests.conftest import Api, make_app  # noqa: E402
from tests.hypervisor.bootsector_image import write_boot_image  # noqa: E402
from tests.support import GUEST_DEADLINE  # noqa: E402

pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(4 * GUEST_DEADLINE)]
IMAGE = "b00710ad-0000-4000-8000-0000000000e1"


@pytest.fixture
def config(system_libvirt: str, prefix: str, tmp_path: Path) -> Config:  # noqa: F811
    return Config(
        data_dir=tmp_path / "var",
        hosts=(HostConfig("local", system_libvirt),),
        ip_pool=random_pool(),
        public_network=f"{prefix}public",
        vlan_network_prefix=f"{prefix}vlan-",
        domain_type="qemu",
        # A small plan: the real catalogue's would ask the shared test machine for a GiB per guest.
        plans=(Plan(1, "ECS1", 1, 64, 1),),
    )


def interfaces(conn: libvirt.virConnect, server: str) -> list[ET.Element]:
    return list(ET.fromstring(conn.lookupByUUIDString(server).XMLDesc(0)).iterfind("devices/interface"))


def vlan(vlan_id: int | None = None, vlans: str | None = None, pvid: bool | None = None) -> Any:
    return ServerCreateRequestNetworkVlan(vlan_id=vlan_id, vlans=vlans, pvid=pvid)


async def test_a_vlan_becomes_a_nic_of_a_real_guest(config, serve, virsh, tmp_path):  # noqa: F811
    client = await serve(make_app(config))
    services = client.app[SERVICES]
    user, secret = await services.users.create()
    eh = Api(client, user, secret)
    await services.imaging.add_standard(IMAGE, "Boot Sector 1", write_boot_image(tmp_path / "boot.raw"))
    made = await eh.call("/resources/vlan/create", {"name": "private"}, as_json=True)
    assert made.status == 200, made.text
    private = made.json
    assert private["vlan_id"] == "1"
    ecs = ecsapi.Api(
        token=await services.tokens.create(user), host="127.0.0.1", port=client.port, protocol="http", timeout=30
    )

    def ask(*networks: ServerCreateRequestNetwork) -> tuple[Any, int]:
        request = ServerCreateRequest(
            plan="ECS1", image="boot-sector-1", location="local", notes="vlan", networks=list(networks)
        )
        return ecs.create_server(request)

    # Refusals first: nothing is made by any of them.
    for networks, words in (
        ([ServerCreateRequestNetwork(name="lan", vlans=[vlan(vlan_id=2)])], "networks: unknown VLAN 2"),
        ([ServerCreateRequestNetwork(name="lan", vlans=[vlan(vlans="1-2")])], "networks: unknown VLAN 2"),
        (
            [ServerCreateRequestNetwork(name="a", vlans=[vlan(vlan_id=1)])] * 2,
            "networks[1]: VLAN 1 is named twice",
        ),
    ):
        with pytest.raises(ClientError) as refused:
            await asyncio.to_thread(ask, *networks)
        assert refused.value.response.status_code == 400
        assert words in refused.value.response.json()["message"]
    assert await asyncio.to_thread(ecs.fetch_servers) == []

    server, action = await asyncio.to_thread(ask, ServerCreateRequestNetwork(name="lan", vlans=[vlan(1, pvid=True)]))
    try:
        done = await asyncio.to_thread(ecs.watch_action, action, fetch_every=1, max_retry=int(GUEST_DEADLINE))
        assert done.status == "completed", done
        row = await services.ecs.get(user, None, server.name)
        assert row.server is not None and row.vlans == (private["resource"],)
        info = (await eh.get(f"/servers/{row.server}/info", as_json=True)).json
        assert info["status"] == "active" and info["nic:1:vlan"] == private["resource"]

        network = config.vlan_network_prefix + private["resource"]
        nics = {nic.find("mac").get("address"): nic for nic in interfaces(virsh, row.server)}  # type: ignore[union-attr]
        assert set(nics) == {info["nic:0:mac"], info["nic:1:mac"]}
        on_vlan = nics[info["nic:1:mac"]]
        source, model = on_vlan.find("source"), on_vlan.find("model")
        assert source is not None and source.get("network") == network
        assert model is not None and model.get("type") == "virtio"
        # The running domain names the bridge its NIC is on: that VLAN's isolated bridge.
        assert source.get("bridge") == vlan_bridge(private["resource"])
        root = network_xml(virsh, network)
        assert root is not None and root.find("forward") is None and root.find("ip") is None
        bridge = root.find("bridge")
        assert bridge is not None and bridge.get("name") == vlan_bridge(private["resource"])
        public = nics[info["nic:0:mac"]].find("source")
        assert public is not None and public.get("network") == config.public_network

        busy = await eh.call(f"/resources/vlan/{private['resource']}/destroy")
        assert busy.status == 409  # the ECS server's NIC is on it
    finally:
        deleted = await asyncio.to_thread(ecs.delete_server, server.name)
        await asyncio.to_thread(ecs.watch_action, deleted.id, fetch_every=1, max_retry=int(GUEST_DEADLINE))
    assert (await eh.call(f"/resources/vlan/{private['resource']}/destroy")).status == 204
