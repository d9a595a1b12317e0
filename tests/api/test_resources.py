"""/resources over HTTP against libvirt test:/// hosts: IPs and VLANs, pool limits, ownership,
and servers' NICs wired to them (reservations read back from the host's network)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig, IpPool
from elastic_api.errors import FailedError
from tests.api.test_servers import new_server, until
from tests.conftest import Api, make_app
from tests.support import libvirt_test_host

RANDOM_VLAN = str(uuid.uuid4())
RANDOM_IP = "198.51.100.99"  # outside the pool below: nobody's
# A pool of three addresses, so exhaustion is a few requests away.
POOL = IpPool(
    network="198.51.100.0/29", gateway="198.51.100.1", nameserver="192.0.2.53", range="198.51.100.2-198.51.100.4"
)
ADDRESSES = ["198.51.100.2", "198.51.100.3", "198.51.100.4"]


@pytest.fixture
def config(tmp_path) -> Config:
    host = libvirt_test_host(tmp_path / "host.xml", memory_mb=4096)
    return Config(
        data_dir=tmp_path / "var",
        hosts=(HostConfig("test", f"test://{host}"),),
        ip_pool=POOL,
        public_network="elastic-test-public",
        vlan_network_prefix="elastic-test-vlan-",
    )


async def create(api: Api, type_: str, body: dict[str, object] | None = None) -> dict:
    reply = await api.call(f"/resources/{type_}/create", body or {}, as_json=True)
    assert reply.status == 200, reply.text
    return reply.json


async def reservations(client) -> dict[str, str]:
    services = client.app[SERVICES]
    return await services.resources.hypervisor.dhcp_hosts("test", services.resources.public.name) or {}


async def test_create_info_list_set_destroy(alice):
    ip = await create(alice, "ip", {"name": "web", "tags": ["a", "b"], "user:ref": "x1"})
    assert ip == {
        "resource": ADDRESSES[0],
        "type": "ip",
        "user": alice.user,
        "name": "web",
        "tags": ["a", "b"],
        "netmask": "255.255.255.248",
        "gateway": "198.51.100.1",
        "nameserver": "192.0.2.53",
        "user:ref": "x1",
    }
    vlan = await create(alice, "vlan", {"name": "backend"})
    assert uuid.UUID(vlan["resource"]) and vlan["type"] == "vlan" and vlan["name"] == "backend"
    assert "netmask" not in vlan

    assert (await alice.get("/resources/list")).text == f"ip {ADDRESSES[0]}\nvlan {vlan['resource']}\n"
    assert (await alice.get("/resources/ip/list")).text == f"ip {ADDRESSES[0]}\n"
    assert (await alice.get("/resources/vlan/list", as_json=True)).json == [
        {"type": "vlan", "resource": vlan["resource"]}
    ]
    listed = (await alice.get("/resources/info", as_json=True)).json
    assert [r["resource"] for r in listed] == [ADDRESSES[0], vlan["resource"]]
    assert (await alice.get("/resources/list")).headers["X-Elastic-Output"] == "list"
    text = (await alice.get(f"/resources/ip/{ADDRESSES[0]}/info")).props()
    assert text["type"] == "ip" and text["gateway"] == "198.51.100.1" and text["tags"] == "a b"
    # Any spelling of a UUID names the same VLAN.
    assert (await alice.get(f"/resources/vlan/{vlan['resource'].upper()}/info")).status == 200

    reply = await alice.call(f"/resources/ip/{ADDRESSES[0]}/set", {"name": "renamed", "user:ref": ""}, as_json=True)
    assert reply.status == 200 and reply.json["name"] == "renamed" and "user:ref" not in reply.json
    assert reply.json["tags"] == ["a", "b"]

    for path in (f"/resources/ip/{ADDRESSES[0]}", f"/resources/vlan/{vlan['resource']}"):
        assert (await alice.call(f"{path}/destroy")).status == 204
        assert (await alice.get(f"{path}/info")).status == 404
    assert (await alice.get("/resources/list")).text == ""
    # The address went back to the pool.
    assert (await create(alice, "ip"))["resource"] == ADDRESSES[0]


@pytest.mark.parametrize(
    "body, word",
    [
        ({"resource": "198.51.100.3"}, "resource is read-only"),
        ({"netmask": "255.0.0.0"}, "netmask is read-only"),
        ({"gateway": "198.51.100.2"}, "gateway is read-only"),
        ({"nameserver": "1.1.1.1"}, "nameserver is read-only"),
        ({"type": "vlan"}, "type is read-only"),
        ({"user": RANDOM_VLAN}, "user is read-only"),
        ({"colour": "red"}, "unknown key: colour"),
        ({"name": "x" * 257}, "name must be at most"),
        ({"tags": [f"t{i}" for i in range(65)]}, "tags holds at most"),
        ({"user:x": "a\u0007b"}, "user:x must not contain control characters"),
    ],
)
async def test_bad_input_is_a_usage_error_and_changes_nothing(alice, body, word):
    vlan = await create(alice, "vlan", {"name": "keep"})
    for type_ in ("ip", "vlan"):
        reply = await alice.call(f"/resources/{type_}/create", body)
        assert (reply.status, reply.error) == (400, "usage"), reply.text
        assert word in reply.text and reply.text.count("\n") == 1
    reply = await alice.call(f"/resources/vlan/{vlan['resource']}/set", body)
    assert (reply.status, reply.error) == (400, "usage")
    assert (await alice.get("/resources/list")).text == f"vlan {vlan['resource']}\n"
    assert (await alice.get(f"/resources/vlan/{vlan['resource']}/info", as_json=True)).json == vlan


async def test_malformed_bodies_and_methods(alice):
    reply = await alice.call("/resources/ip/create", b"name\x00\n", headers={"Content-Type": "text/plain"})
    assert reply.status == 400
    reply = await alice.call("/resources/vlan/create", b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status == 400
    for path in (
        "/resources/ip/create",
        "/resources/vlan/create",
        f"/resources/ip/{ADDRESSES[0]}/destroy",
        f"/resources/ip/{ADDRESSES[0]}/set",
    ):
        assert (await alice.get(path)).status == 405
    assert (await alice.get("/resources/list")).text == ""


@pytest.mark.parametrize(
    "path",
    [
        "/resources/disk/list",
        "/resources/disk/info",
        "/resources/disk/create",
        f"/resources/disk/{RANDOM_VLAN}/info",
        f"/resources/IP/{ADDRESSES[0]}/info",
        "/resources/ip/not-an-address/info",
        "/resources/vlan/not-a-uuid/info",
        f"/resources/ip/{RANDOM_VLAN}/info",
        f"/resources/vlan/{ADDRESSES[0]}/destroy",
    ],
)
async def test_unknown_types_and_ids_are_missing(alice, path):
    await create(alice, "ip")
    reply = await alice.call(path)
    assert (reply.status, reply.error) == (404, "missing"), reply.text
    assert (await alice.get("/resources/list")).text == f"ip {ADDRESSES[0]}\n"


async def test_other_users_resources_answer_like_random_ones(alice, bob):
    ip = (await create(alice, "ip"))["resource"]
    vlan = (await create(alice, "vlan"))["resource"]
    for type_, mine, random in (("ip", ip, RANDOM_IP), ("vlan", vlan, RANDOM_VLAN)):
        for action in ("info", "set", "destroy"):
            theirs = await bob.call(f"/resources/{type_}/{mine}/{action}", {"name": "stolen"})
            missing = await bob.call(f"/resources/{type_}/{random}/{action}", {"name": "stolen"})
            assert (theirs.status, theirs.error) == (404, "missing"), (type_, action)
            assert theirs.text.replace(mine, random) == missing.text
    assert (await bob.get("/resources/list")).text == ""
    assert (await bob.get(f"/resources/list?marker={ip}")).status == 400

    # Nor can bob's servers name them: the same 404 as an IP or VLAN nobody has.
    for keys in ({"nic:0:dhcp": ip}, {"vnc": ip}, {"nic:0:vlan": vlan}):
        random_keys = {k: RANDOM_IP if v == ip else RANDOM_VLAN for k, v in keys.items()}
        body = {"name": "x", "cpu": "1000", "mem": "64", "nic:0:model": "virtio"}
        theirs = await bob.call("/servers/create/stopped", {**body, **keys})
        missing = await bob.call("/servers/create/stopped", {**body, **random_keys})
        assert (theirs.status, theirs.error) == (404, "missing"), keys
        assert theirs.text.replace(ip, RANDOM_IP).replace(vlan, RANDOM_VLAN) == missing.text
    assert (await bob.get("/servers/list")).text == ""
    info = (await alice.get(f"/resources/ip/{ip}/info", as_json=True)).json
    assert info["user"] == alice.user and info["name"] == ""


async def test_pages(alice):
    made = [(await create(alice, "vlan" if i % 2 else "ip"))["resource"] for i in range(4)]
    assert (await alice.get("/resources/list?limit=2")).text.split()[1::2] == made[:2]
    assert (await alice.get(f"/resources/list?marker={made[1]}")).text.split()[1::2] == made[2:]
    assert (await alice.get(f"/resources/vlan/list?marker={made[1]}")).text.split()[1::2] == [made[3]]
    assert (await alice.get(f"/resources/ip/list?marker={made[0]}")).text.split()[1::2] == [made[2]]
    for marker in (RANDOM_VLAN, RANDOM_IP, "nonsense"):
        assert (await alice.get(f"/resources/list?marker={marker}")).status == 400
    assert (await alice.get("/resources/list?limit=0")).status == 400
    assert (await alice.get("/resources/list?limit=1000000")).status == 400


async def test_pool_exhaustion_is_full(alice, bob):
    assert [(await create(alice if i < 2 else bob, "ip"))["resource"] for i in range(3)] == ADDRESSES
    reply = await alice.call("/resources/ip/create", {"name": "one too many"})
    assert (reply.status, reply.error) == (507, "full")
    # An `auto` NIC finds no address either; the server is not left behind.
    reply = await alice.call(
        "/servers/create", {"name": "x", "cpu": "1000", "mem": "64", "nic:0:model": "virtio", "nic:0:dhcp": "auto"}
    )
    assert (reply.status, reply.error) == (507, "full")
    assert (await alice.get("/servers/list")).text == ""
    assert (await bob.call(f"/resources/ip/{ADDRESSES[2]}/destroy")).status == 204
    server = await new_server(alice, {"nic:0:model": "virtio", "nic:0:dhcp": "auto"})
    assert server["nic:0:dhcp:ip"] == ADDRESSES[2]
    # A held `auto` address is not for an IP resource either.
    reply = await bob.call("/resources/ip/create")
    assert (reply.status, reply.error) == (507, "full")


async def test_servers_hold_addresses_while_they_run(alice, client):
    ip = (await create(alice, "ip"))["resource"]
    static = await new_server(
        alice, {"nic:0:model": "virtio", "nic:0:dhcp": ip, "nic:0:mac": "02:00:00:00:00:01"}, persistent="true"
    )
    auto = await new_server(
        alice, {"nic:0:model": "e1000", "nic:0:dhcp": "auto", "nic:0:mac": "02:00:00:00:00:02"}, persistent="true"
    )
    assert static["nic:0:dhcp"] == ip and static["nic:0:dhcp:ip"] == ip
    assert auto["nic:0:dhcp"] == "auto" and auto["nic:0:dhcp:ip"] == ADDRESSES[1]
    assert await reservations(client) == {"02:00:00:00:00:01": ip, "02:00:00:00:00:02": ADDRESSES[1]}

    # Both stop: the reservations go, the auto address returns to the pool, the static IP stays alice's.
    for server in (static, auto):
        assert (await alice.call(f"/servers/{server['server']}/stop")).status == 204
        info = (await alice.get(f"/servers/{server['server']}/info", as_json=True)).json
        assert info["status"] == "stopped" and "nic:0:dhcp:ip" not in info
    assert await reservations(client) == {}
    assert (await create(alice, "ip"))["resource"] == ADDRESSES[1]
    assert (await alice.get(f"/resources/ip/{ip}/info")).status == 200

    # A stopped server still names its IP: destroying it is refused until the server lets go.
    reply = await alice.call(f"/resources/ip/{ip}/destroy")
    assert (reply.status, reply.error) == (409, "busy") and static["server"] in reply.text
    reply = await alice.call(f"/servers/{static['server']}/set", {"nic:0:dhcp": "auto"})
    assert reply.status == 200
    assert (await alice.call(f"/resources/ip/{ip}/destroy")).status == 204


async def test_two_servers_never_hold_one_ip(alice, client):
    ip = (await create(alice, "ip"))["resource"]
    keys = {"nic:0:model": "virtio", "nic:0:dhcp": ip}
    first = await new_server(alice, **keys)
    reply = await alice.call("/servers/create", {"name": "second", "cpu": "1000", "mem": "64", **keys})
    assert (reply.status, reply.error) == (409, "busy") and first["server"] in reply.text
    assert (await alice.get("/servers/list")).text.split()[::3] == [first["server"]]
    assert list((await reservations(client)).values()) == [ip]
    # One IP on two NICs of one server would be two MACs for one address.
    reply = await alice.call(
        "/servers/create/stopped",
        {"name": "x", "cpu": "1000", "mem": "64", **keys, "nic:1:model": "virtio", "nic:1:dhcp": ip},
    )
    assert (reply.status, reply.error) == (400, "usage")


async def test_a_guest_stopping_by_itself_releases_its_address(alice, client):
    server = await new_server(alice, {"nic:0:model": "virtio", "nic:0:dhcp": "auto"}, persistent="true")
    assert await reservations(client) != {}
    record = await client.app[SERVICES].servers.get(alice.user, server["server"])
    await client.app[SERVICES].servers.hypervisor.stop(record.host, server["server"])

    async def released():
        info = (await alice.get(f"/servers/{server['server']}/info", as_json=True)).json
        return info["status"] == "stopped" and await reservations(client) == {}

    await until(released)
    assert (await create(alice, "ip"))["resource"] == server["nic:0:dhcp:ip"]


async def test_vlans_wire_nics_to_their_own_networks(alice, client):
    services = client.app[SERVICES]
    hypervisor = services.resources.hypervisor
    vlan = (await create(alice, "vlan"))["resource"]
    network = f"elastic-test-vlan-{vlan}"
    assert await hypervisor.networks("test", "elastic-test-vlan-") == []  # made when first needed
    server = await new_server(
        alice, {"nic:0:model": "virtio", "nic:1:model": "virtio", "nic:1:vlan": vlan}, persistent="true"
    )
    assert server["nic:1:vlan"] == vlan and "nic:1:dhcp:ip" not in server
    assert await hypervisor.networks("test", "elastic-test-vlan-") == [network]

    reply = await alice.call(f"/resources/vlan/{vlan}/destroy")
    assert (reply.status, reply.error) == (409, "busy")
    assert (await alice.call(f"/servers/{server['server']}/destroy")).status == 204
    assert (await alice.call(f"/resources/vlan/{vlan}/destroy")).status == 204
    assert await hypervisor.networks("test", "elastic-test-vlan-") == []


async def test_a_nic_is_public_or_on_a_vlan_not_both(alice):
    vlan = (await create(alice, "vlan"))["resource"]
    reply = await alice.call(
        "/servers/create/stopped",
        {"name": "x", "cpu": "1000", "mem": "64", "nic:0:model": "virtio", "nic:0:dhcp": "auto", "nic:0:vlan": vlan},
    )
    assert (reply.status, reply.error) == (400, "usage") and "exclude" in reply.text


async def test_a_failed_start_gives_everything_back(alice, client):
    ip = (await create(alice, "ip"))["resource"]
    # More memory than the host has: placement refuses after nothing was leased...
    reply = await alice.call(
        "/servers/create",
        {
            "name": "x",
            "cpu": "1000",
            "mem": "8192",
            "nic:0:model": "virtio",
            "nic:0:dhcp": ip,
            "nic:1:model": "virtio",
            "nic:1:dhcp": "auto",
        },
    )
    assert (reply.status, reply.error) == (507, "full")
    # ...and a start libvirt refuses after the leases were taken gives them back too.
    server = await new_server(
        alice,
        {"nic:0:model": "virtio", "nic:0:dhcp": ip, "nic:1:model": "virtio", "nic:1:dhcp": "auto"},
        start=False,
        persistent="true",
    )
    hypervisor = client.app[SERVICES].servers.hypervisor
    real_start = hypervisor.start

    async def refuse(host, xml, secrets=None):
        assert "elastic-test-public" in xml
        raise FailedError("refused")

    hypervisor.start = refuse
    try:
        reply = await alice.call(f"/servers/{server['server']}/start")
        assert (reply.status, reply.error) == (500, "failed")
    finally:
        hypervisor.start = real_start
    assert await reservations(client) == {}
    assert (await create(alice, "ip"))["resource"] == ADDRESSES[1]  # the auto address is free again
    assert (await alice.call(f"/servers/{server['server']}/start")).status == 204


async def test_start_up_reconciles_networks(config, serve):
    first = await serve(make_app(config))
    services = first.app[SERVICES]
    user, secret = await services.users.create()
    api = Api(first, user, secret)
    server = await new_server(api, {"nic:0:model": "virtio", "nic:0:dhcp": "auto"}, persistent="true")
    stopped = (
        await api.call(
            "/servers/create/stopped",
            {"name": "off", "cpu": "500", "mem": "64", "nic:0:model": "virtio", "nic:0:mac": "02:aa:00:00:00:01"},
            as_json=True,
        )
    ).json
    hypervisor = services.resources.hypervisor
    # A reservation for a stopped server of ours and a VLAN network without a VLAN, as a crash
    # might leave them; a reservation for a MAC none of our servers has is another installation's.
    await hypervisor.set_dhcp_host("test", "elastic-test-public", stopped["nic:0:mac"], ADDRESSES[2], set())
    await hypervisor.set_dhcp_host("test", "elastic-test-public", "02:bb:00:00:00:01", ADDRESSES[1], set())
    stray = f"elastic-test-vlan-{uuid.uuid4()}"
    await hypervisor.ensure_network("test", stray)
    await hypervisor.ensure_network("test", "elastic-test-vlan-not-ours")
    await services.resources.reconcile()
    assert await reservations(first) == {
        server["nic:0:mac"]: server["nic:0:dhcp:ip"],
        "02:bb:00:00:00:01": ADDRESSES[1],
    }
    assert await hypervisor.networks("test", "elastic-test-vlan-") == ["elastic-test-vlan-not-ours"]
    await first.close()

    # test:/// hosts forget their guests when the API stops, like a host reboot: the server is
    # stopped at start-up and its auto address is free again.
    second = await serve(make_app(config))
    api = Api(second, user, secret)
    info = (await api.get(f"/servers/{server['server']}/info", as_json=True)).json
    assert info["status"] == "stopped"
    assert (await create(api, "ip"))["resource"] == ADDRESSES[0]


async def test_concurrent_starts_get_distinct_addresses(alice, client):
    keys = {"nic:0:model": "virtio", "nic:0:dhcp": "auto"}
    servers = await asyncio.gather(*(new_server(alice, keys, name=f"s{i}") for i in range(3)))
    assert sorted(s["nic:0:dhcp:ip"] for s in servers) == ADDRESSES
    assert sorted((await reservations(client)).values()) == ADDRESSES
    reply = await alice.call("/servers/create", {"name": "late", "cpu": "1000", "mem": "64", **keys})
    assert (reply.status, reply.error) == (507, "full")
