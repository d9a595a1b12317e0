"""Resources wired into the real libvirtd (qemu:///system): the public network's DHCP reservations
and VLAN networks, read back as libvirt's own XML through a connection of the test's own.

Each test has its own network names and a random /28 of 198.18.0.0/15 (RFC 2544's benchmarking
range, routed nowhere), and removes every network with its prefix however it ends, so tests here
and other users of the same libvirtd never see each other's networks. No test sends a packet to a
guest or pool address: only XML and the API are checked.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping

import libvirt
import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, HostConfig, IpPool
from elastic_api.hypervisor.network import isolated_network_xml, vlan_bridge
from tests.api.test_servers import until
from tests.conftest import Api, make_app

pytestmark = pytest.mark.libvirt


def random_pool() -> IpPool:
    network = ipaddress.IPv4Network((int(ipaddress.IPv4Address("198.18.0.0")) + 16 * secrets.randbelow(8192), 28))
    hosts = list(network.hosts())
    return IpPool(network=str(network), gateway=str(hosts[0]), nameserver=str(hosts[0]), range=f"{hosts[1]}-{hosts[3]}")


@pytest.fixture
def prefix(system_libvirt: str) -> Iterator[str]:
    """This test's network name prefix; every network under it is removed at the end, pass or fail
    (the test's guests first, so no network goes away under a running guest)."""
    prefix = f"elastic-t{secrets.token_hex(4)}-"
    yield prefix
    conn = libvirt.open(system_libvirt)
    try:
        for network in conn.listAllNetworks():
            if not network.name().startswith(prefix):
                continue
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                try:  # another run's guest may go between the list and this look
                    sources = ET.fromstring(dom.XMLDesc(0)).findall("devices/interface/source")
                    if any(source.get("network") == network.name() for source in sources):
                        dom.destroy()
                except libvirt.libvirtError:
                    pass
            try:
                if network.isActive():
                    network.destroy()
                if network.isPersistent():
                    network.undefine()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


@pytest.fixture
def config(system_libvirt: str, prefix: str, tmp_path) -> Config:
    return Config(
        data_dir=tmp_path / "var",
        hosts=(HostConfig("local", system_libvirt),),
        ip_pool=random_pool(),
        public_network=f"{prefix}public",
        vlan_network_prefix=f"{prefix}vlan-",
        domain_type="qemu",
    )


@pytest.fixture
async def api(config, serve):
    client = await serve(make_app(config))
    user, secret = await client.app[SERVICES].users.create()
    api = Api(client, user, secret)
    yield api
    for server in (await api.get("/servers/list")).text.split()[::3]:
        await api.call(f"/servers/{server}/destroy")


@pytest.fixture
def virsh(system_libvirt: str) -> Iterator[libvirt.virConnect]:
    """Our own connection to libvirtd: what `virsh net-dumpxml` would show."""
    conn = libvirt.open(system_libvirt)
    yield conn
    conn.close()


def network_xml(conn: libvirt.virConnect, name: str) -> ET.Element | None:
    try:
        return ET.fromstring(conn.networkLookupByName(name).XMLDesc(0))
    except libvirt.libvirtError as e:
        assert e.get_error_code() == libvirt.VIR_ERR_NO_NETWORK
        return None


def reservations(conn: libvirt.virConnect, name: str) -> dict[str, str]:
    root = network_xml(conn, name)
    assert root is not None, f"no network {name}"
    return {h.get("mac", ""): h.get("ip", "") for h in root.iterfind("ip/dhcp/host")}


async def new_server(api: Api, wire: Mapping[str, str] | None = None, **keys: str) -> dict:
    # No drives: the guest sits in its firmware, which is all a NIC's wiring needs.
    reply = await api.call(
        "/servers/create",
        {"name": "net", "cpu": "500", "smp": "1", "mem": "32", "persistent": "true", **keys, **(wire or {})},
        as_json=True,
    )
    assert reply.status == 200, reply.text
    return reply.json


def interfaces(conn: libvirt.virConnect, server: str) -> dict[str, str]:
    """MAC → network of the running guest's NICs."""
    root = ET.fromstring(conn.lookupByUUIDString(server).XMLDesc(0))
    found = {}
    for interface in root.iterfind("devices/interface"):
        mac, source = interface.find("mac"), interface.find("source")
        assert mac is not None and source is not None
        found[mac.get("address", "")] = source.get("network", "")
    return found


async def test_public_network_and_reservations(api, config, virsh):
    pool = config.ip_pool
    ip = (await api.call("/resources/ip/create", as_json=True)).json
    assert ip["resource"] == pool.first and ip["gateway"] == pool.gateway and ip["netmask"] == "255.255.255.240"
    assert network_xml(virsh, config.public_network) is None  # made when a server first needs it

    static = await new_server(
        api, {"nic:0:model": "virtio", "nic:0:dhcp": ip["resource"], "nic:0:mac": "02:00:00:00:00:0a"}
    )
    auto = await new_server(api, {"nic:0:model": "virtio", "nic:0:dhcp": "auto", "nic:0:mac": "02:00:00:00:00:0b"})
    leased = auto["nic:0:dhcp:ip"]
    assert leased != ip["resource"] and ipaddress.IPv4Address(leased) in ipaddress.IPv4Network(pool.network)

    root = network_xml(virsh, config.public_network)
    assert root is not None and root.find("forward") is None  # isolated: nothing is routed for guests
    address = root.find("ip")
    assert address is not None and (address.get("address"), address.get("netmask")) == (pool.gateway, "255.255.255.240")
    dhcp_range = root.find("ip/dhcp/range")
    assert dhcp_range is not None and (dhcp_range.get("start"), dhcp_range.get("end")) == (pool.first, pool.last)
    bridge = root.find("bridge")
    assert bridge is not None and len(bridge.get("name", "")) <= 15
    assert reservations(virsh, config.public_network) == {
        "02:00:00:00:00:0a": ip["resource"],
        "02:00:00:00:00:0b": leased,
    }
    assert interfaces(virsh, static["server"]) == {"02:00:00:00:00:0a": config.public_network}

    reply = await api.call(f"/resources/ip/{ip['resource']}/destroy")
    assert (reply.status, reply.error) == (409, "busy")

    assert (await api.call(f"/servers/{auto['server']}/stop")).status == 204
    assert reservations(virsh, config.public_network) == {"02:00:00:00:00:0a": ip["resource"]}
    assert (await api.call("/resources/ip/create", as_json=True)).json["resource"] == leased

    # The pool is now all taken (one IP resource each for static, the freed lease, and the last).
    assert (await api.call("/resources/ip/create")).status == 200
    reply = await api.call(f"/servers/{auto['server']}/start")
    assert (reply.status, reply.error) == (507, "full")
    assert reservations(virsh, config.public_network) == {"02:00:00:00:00:0a": ip["resource"]}
    assert (await api.get(f"/servers/{auto['server']}/info", as_json=True)).json["status"] == "stopped"


async def test_auto_address_released_when_the_guest_stops_behind_the_api(api, config, virsh):
    server = await new_server(api, {"nic:0:model": "e1000", "nic:0:dhcp": "auto"})
    mac, leased = server["nic:0:mac"], server["nic:0:dhcp:ip"]
    assert reservations(virsh, config.public_network) == {mac: leased}
    virsh.lookupByUUIDString(server["server"]).destroy()  # as a guest's own power-off would end it

    async def released():
        info = (await api.get(f"/servers/{server['server']}/info", as_json=True)).json
        return info["status"] == "stopped" and "nic:0:dhcp:ip" not in info

    await until(released)
    assert reservations(virsh, config.public_network) == {}


async def test_vlan_networks_are_made_when_needed_and_removed_with_the_vlan(api, config, virsh):
    vlan = (await api.call("/resources/vlan/create", {"name": "private"}, as_json=True)).json["resource"]
    name = config.vlan_network_prefix + vlan
    assert network_xml(virsh, name) is None
    first = await new_server(api, {"nic:0:model": "virtio", "nic:0:vlan": vlan})
    second = await new_server(api, {"nic:0:model": "virtio", "nic:1:model": "virtio", "nic:1:vlan": vlan})

    root = network_xml(virsh, name)
    assert root is not None
    bridge = root.find("bridge")
    assert bridge is not None and bridge.get("name") == vlan_bridge(vlan) and len(vlan_bridge(vlan)) <= 15
    # Isolated: no forwarding, no host address, no DHCP.
    assert root.find("forward") is None and root.find("ip") is None
    assert interfaces(virsh, first["server"]) == {first["nic:0:mac"]: name}
    assert interfaces(virsh, second["server"])[second["nic:1:mac"]] == name
    assert interfaces(virsh, second["server"])[second["nic:0:mac"]] != name

    reply = await api.call(f"/resources/vlan/{vlan}/destroy")
    assert (reply.status, reply.error) == (409, "busy")
    for server in (first, second):
        assert (await api.call(f"/servers/{server['server']}/destroy")).status == 204
    assert network_xml(virsh, name) is not None  # unused, but the VLAN still exists
    assert (await api.call(f"/resources/vlan/{vlan}/destroy")).status == 204
    assert network_xml(virsh, name) is None


async def test_start_up_reconciles_libvirt_with_the_database(config, serve, virsh):
    first = await serve(make_app(config))
    services = first.app[SERVICES]
    user, secret = await services.users.create()
    api = Api(first, user, secret)
    server = await new_server(api, {"nic:0:model": "virtio", "nic:0:dhcp": "auto"})
    mac, leased = server["nic:0:mac"], server["nic:0:dhcp:ip"]
    off = (
        await api.call(
            "/servers/create/stopped",
            {"name": "off", "cpu": "500", "mem": "32", "nic:0:model": "virtio", "nic:0:mac": "02:aa:00:00:00:01"},
            as_json=True,
        )
    ).json
    installation = services.servers.hypervisor.installation
    try:
        await first.close()  # the guest keeps running on a real host while the API is down
        network = virsh.networkLookupByName(config.public_network)
        # A reservation left for a stopped server of ours goes; one for a MAC none of our servers
        # has is another installation's (sharing the network) and stays.
        theirs = str(ipaddress.IPv4Address(config.ip_pool.first) + 1)  # between the lease and `last`
        hosts = {off["nic:0:mac"]: config.ip_pool.last, "02:bb:00:00:00:01": theirs}
        for host_mac, ip in hosts.items():
            stale = ET.tostring(ET.Element("host", mac=host_mac, ip=ip), encoding="unicode")
            network.update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                -1,
                stale,
                libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE,
            )
        ours = ET.tostring(ET.Element("host", mac=mac, ip=leased), encoding="unicode")
        network.update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            ours,
            libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE,
        )
        # A VLAN network of ours whose VLAN is gone goes; one without an installation ID (from
        # before them, or made by hand) cannot be proved ours and stays.
        orphan, unowned = (config.vlan_network_prefix + str(uuid.uuid4()) for _ in range(2))
        virsh.networkCreateXML(isolated_network_xml(orphan, installation))
        virsh.networkCreateXML(f"<network><name>{unowned}</name><bridge stp='on' delay='0'/></network>")

        second = await serve(make_app(config))
        api = Api(second, user, secret)
        info = (await api.get(f"/servers/{server['server']}/info", as_json=True)).json
        assert info["status"] == "active" and info["nic:0:dhcp:ip"] == leased
        assert reservations(virsh, config.public_network) == {mac: leased, "02:bb:00:00:00:01": theirs}
        assert network_xml(virsh, orphan) is None and network_xml(virsh, unowned) is not None
        reserved = ET.tostring(ET.Element("host", mac="02:bb:00:00:00:01", ip=theirs), encoding="unicode")
        network.update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            reserved,
            libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE,
        )

        # Stopped behind the API's back while it was down: the address is free after the next start.
        await second.close()
        virsh.lookupByUUIDString(server["server"]).destroy()
        third = await serve(make_app(config))
        api = Api(third, user, secret)
        info = (await api.get(f"/servers/{server['server']}/info", as_json=True)).json
        assert info["status"] == "stopped" and "nic:0:dhcp:ip" not in info
        assert reservations(virsh, config.public_network) == {}
    finally:
        try:
            virsh.lookupByUUIDString(server["server"]).destroy()
        except libvirt.libvirtError:
            pass
