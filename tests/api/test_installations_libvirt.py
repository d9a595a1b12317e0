"""Two installations (two data directories, two apps) on the real libvirtd, qemu:///system, with
the same public network and VLAN prefix: each boots a real guest with an encrypted drive, a
public address and a VLAN; one restarts, and its start-up reconcile removes its own leftovers
but leaves the other's guest, secret, reservation and networks as they were; the other's guest
stopping is not handled by the first.

The public network's pool is a random /28 of 198.18.0.0/15, the network names carry a random
prefix (see test_resources_libvirt), and every network with that prefix goes at the end."""

from __future__ import annotations

import asyncio
import gzip
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig
from elastic_api.hypervisor.domain import installation_of, secret_owner
from elastic_api.hypervisor.network import isolated_network_xml
from elastic_api.installation import load_or_create
from tests.api.test_resources_libvirt import network_xml, prefix, random_pool, reservations  # noqa: F401
from tests.conftest import Api, make_app
from tests.hypervisor.bootsector_image import BOOT_MARKER, boot_sector

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]
# Firmware and the boot sector take seconds; a busy shared machine gets generous room.
BOOT_TIMEOUT = 120.0


@pytest.fixture
def virsh(system_libvirt: str) -> Iterator[libvirt.virConnect]:
    conn = libvirt.open(system_libvirt)
    yield conn
    conn.close()


@pytest.fixture
def configs(system_libvirt: str, prefix: str, tmp_path: Path) -> tuple[Config, Config]:  # noqa: F811
    """Two installations configured alike but for their data directories (the default config
    otherwise: encrypted drives, the host's domain type)."""
    pool = random_pool()
    return tuple(
        Config(
            data_dir=tmp_path / name,
            hosts=(HostConfig("local", system_libvirt),),
            ip_pool=pool,
            public_network=f"{prefix}public",
            vlan_network_prefix=f"{prefix}vlan-",
        )
        for name in ("a", "b")
    )  # type: ignore[return-value]


async def until(condition: Any, what: str, timeout: float = BOOT_TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def user_of(client: Any) -> Api:
    user, secret = await client.app[SERVICES].users.create()
    return Api(client, user, secret)


async def boot_guest(api: Api, nic0: dict[str, str]) -> dict[str, Any]:
    """A persistent server booting the test boot sector from an encrypted drive (a libvirt
    secret), with nic:0 on the public network and nic:1 on a VLAN of its own; its boot waited for."""
    drive = (await api.create_drive("1M", name="boot"))["drive"]
    assert (
        await api.call(f"/drives/{drive}/write/0", gzip.compress(boot_sector()), headers={"Content-Encoding": "gzip"})
    ).status == 204
    vlan = (await api.call("/resources/vlan/create", {"name": "private"}, as_json=True)).json["resource"]
    reply = await api.call(
        "/servers/create",
        {
            "name": "guest",
            "cpu": "2000",
            "smp": "1",
            "mem": "64",
            "persistent": "true",
            "ide:0:0": drive,
            "boot": "ide:0:0",
            "nic:0:model": "virtio",
            **nic0,
            "nic:1:model": "virtio",
            "nic:1:vlan": vlan,
        },
        as_json=True,
    )
    assert reply.status == 200, reply.text
    server = reply.json
    log = api.client.app[SERVICES].servers.serial_log(server["server"])

    async def booted() -> bool:
        return log.exists() and BOOT_MARKER in log.read_bytes()

    await until(booted, "the guest's boot marker")
    return server


def secrets_of(conn: libvirt.virConnect, server: str) -> dict[str, str | None]:
    """UUID → installation of the libvirt secrets described as this server's."""
    found = {}
    for secret in conn.listAllSecrets(0):
        owner, installation = secret_owner(ET.fromstring(secret.XMLDesc(0)).findtext("description") or "")
        if owner == server:
            found[secret.UUIDString()] = installation
    return found


def snapshot(conn: libvirt.virConnect, server: dict[str, Any], vlan_network: str, public: str) -> dict[str, Any]:
    dom = conn.lookupByUUIDString(server["server"])
    return {
        "domain id": dom.ID(),
        "active": dom.isActive(),
        "installation": installation_of(dom.XMLDesc(0)),
        "secrets": secrets_of(conn, server["server"]),
        "reservation": reservations(conn, public).get(server["nic:0:mac"]),
        "vlan network": network_xml(conn, vlan_network) is not None,
    }


async def test_a_restart_leaves_the_other_installation_alone(configs, serve, virsh) -> None:
    config_a, config_b = configs
    id_a, id_b = load_or_create(config_a.data_dir), load_or_create(config_b.data_dir)
    assert id_a != id_b
    client_a, client_b = await serve(make_app(config_a)), await serve(make_app(config_b))
    alice, bob = await user_of(client_a), await user_of(client_b)
    servers: list[tuple[str, str]] = []  # (installation, server) to destroy however the test ends
    apis = {"a": alice, "b": bob}
    try:
        guest_a = await boot_guest(alice, {"nic:0:dhcp": "auto"})
        servers.append(("a", guest_a["server"]))
        # Both installations give out the pool's first address first: the other's start must not
        # take it from A's guest (its reservation stays), and fails instead.
        reply = await bob.call(
            "/servers/create",
            {"name": "clash", "cpu": "1000", "mem": "32", "nic:0:model": "virtio", "nic:0:dhcp": "auto"},
        )
        assert (reply.status, reply.error) == (500, "failed") and "another installation" in reply.text
        assert reservations(virsh, config_a.public_network) == {guest_a["nic:0:mac"]: guest_a["nic:0:dhcp:ip"]}
        first = (await bob.call("/resources/ip/create", as_json=True)).json["resource"]
        second = (await bob.call("/resources/ip/create", as_json=True)).json["resource"]
        assert first == guest_a["nic:0:dhcp:ip"]
        guest_b = await boot_guest(bob, {"nic:0:dhcp": second})
        servers.append(("b", guest_b["server"]))

        public = config_a.public_network
        vlan_b = config_b.vlan_network_prefix + guest_b["nic:1:vlan"]
        before_b = snapshot(virsh, guest_b, vlan_b, public)
        assert before_b["installation"] == id_b and before_b["reservation"] == second
        assert list(before_b["secrets"].values()) == [id_b] and before_b["vlan network"]
        assert installation_of(virsh.networkLookupByName(vlan_b).XMLDesc(0)) == id_b
        # The public network was made by A (first to need it), and B shares it.
        assert installation_of(virsh.networkLookupByName(public).XMLDesc(0)) == id_a

        # A goes down. Meanwhile: an orphan VLAN network of each installation (as a crash of a
        # VLAN destroy might leave them), and one without an ID (from before installation IDs).
        await client_a.close()
        orphans = {
            who: f"{config_a.vlan_network_prefix}{'0' * 7}{n}-0000-4000-8000-000000000000"
            for n, who in enumerate((id_a, id_b, None))
        }
        for who, name in orphans.items():
            xml = isolated_network_xml(name, who) if who else f"<network><name>{name}</name><bridge/></network>"
            virsh.networkCreateXML(xml)

        client_a = await serve(make_app(config_a))  # its start-up reconcile runs
        alice = apis["a"] = Api(client_a, alice.user, alice.secret)

        # Its own: the guest is still active with its address; its orphan network is gone.
        info = (await alice.get(f"/servers/{guest_a['server']}/info", as_json=True)).json
        assert info["status"] == "active" and info["nic:0:dhcp:ip"] == guest_a["nic:0:dhcp:ip"]
        assert reservations(virsh, public)[guest_a["nic:0:mac"]] == guest_a["nic:0:dhcp:ip"]
        assert network_xml(virsh, orphans[id_a]) is None
        # The other's, and nobody's: untouched.
        assert snapshot(virsh, guest_b, vlan_b, public) == before_b
        assert network_xml(virsh, orphans[id_b]) is not None and network_xml(virsh, orphans[None]) is not None
        assert (await bob.get(f"/servers/{guest_b['server']}/info", as_json=True)).json["status"] == "active"

        # The other's guest stops: B handles it, A hears nothing of it.
        heard: list[tuple[str, str]] = []
        servers_a = client_a.app[SERVICES].servers

        async def spy(server: str, event: str) -> None:
            heard.append((server, event))
            await servers_a.on_event(server, event)

        servers_a.hypervisor.on_event(spy)
        assert (await bob.call(f"/servers/{guest_b['server']}/stop")).status == 204
        assert secrets_of(virsh, guest_b["server"]) == {}
        # A's own guest stops behind its back: A hears that (events come in order, so B's stop
        # would have been heard first) and puts its server right.
        virsh.lookupByUUIDString(guest_a["server"]).destroy()

        async def a_stopped() -> bool:
            return (await alice.get(f"/servers/{guest_a['server']}/info", as_json=True)).json["status"] == "stopped"

        await until(a_stopped, "A's server to stop")
        assert heard == [(guest_a["server"], "stopped")]
        assert secrets_of(virsh, guest_a["server"]) == {}
        assert reservations(virsh, public) == {}
    finally:
        for who, server in servers:
            await apis[who].call(f"/servers/{server}/destroy")
