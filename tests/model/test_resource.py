"""Resources as typed values, the pure pool arithmetic and what a server's configuration names."""

from __future__ import annotations

import pytest

from elastic_api.errors import MissingError
from elastic_api.model.resource import (
    Resource,
    ResourceChanges,
    ResourceSpec,
    apply_changes,
    check_nics,
    first_free,
    new_resource,
    parse_any_resource,
    parse_resource,
    parse_type,
    static_ips,
    vlans,
)
from elastic_api.api.elastichosts.codec.server import parse_config, wire_refusal
from elastic_api.model.server import ConfigRefusal

SERVER = "5e7e0000-0000-4000-8000-00000000000a"
VLAN = "0ddba11a-0000-4000-8000-000000000000"


def test_create_and_set():
    created = new_resource("192.0.2.7", "ip", "u", ResourceSpec(user_keys={"x": "1", "gone": ""}), created=5)
    assert created == Resource("192.0.2.7", "ip", "u", "", (), {"x": "1"}, 5)
    changed = apply_changes(created, ResourceChanges(name="n", user_keys={"x": "", "z": "2"}))
    assert (changed.name, changed.tags, changed.user_keys) == ("n", (), {"z": "2"})
    assert apply_changes(changed, ResourceChanges(tags=("t",))) == Resource(
        "192.0.2.7", "ip", "u", "n", ("t",), {"z": "2"}, 5
    )


def test_types_and_ids():
    assert parse_type("ip") == "ip" and parse_type("vlan") == "vlan"
    for bad in ("IP", "disk", ""):
        with pytest.raises(MissingError):
            parse_type(bad)
    assert parse_resource("ip", " 192.0.2.7 ") == "192.0.2.7"
    assert parse_resource("ip", "192.0.2.007") is None and parse_resource("ip", VLAN) is None
    assert parse_resource("ip", "2001:db8::1") is None  # the pool is IPv4
    assert parse_resource("vlan", VLAN.upper()) == VLAN and parse_resource("vlan", "192.0.2.7") is None
    assert parse_any_resource("192.0.2.7") == "192.0.2.7" and parse_any_resource(VLAN.upper()) == VLAN
    assert parse_any_resource("x") is None


def test_first_free():
    assert first_free("10.0.0.254", "10.0.1.1", set()) == "10.0.0.254"
    assert first_free("10.0.0.254", "10.0.1.1", {"10.0.0.254", "10.0.0.255"}) == "10.0.1.0"
    assert first_free("10.0.0.1", "10.0.0.2", {"10.0.0.1", "10.0.0.2"}) is None
    # A huge range with a few used addresses is quick: it stops at the first gap.
    assert first_free("10.0.0.0", "10.255.255.255", {"10.0.0.0"}) == "10.0.0.1"


def config(**props):
    return parse_config({"name": "x", "cpu": "1000", "mem": "64", **props}, SERVER)


def test_what_a_server_names():
    c = config(
        **{
            "nic:0:model": "virtio",
            "nic:0:dhcp": "192.0.2.7",
            "nic:1:model": "virtio",
            "nic:1:dhcp": "auto",
            "nic:2:model": "virtio",
            "nic:2:vlan": VLAN,
            "nic:3:model": "virtio",
            "nic:3:vlan": VLAN,
            "vnc": "192.0.2.8",
        }
    )
    assert static_ips(c) == ["192.0.2.7", "192.0.2.8"]
    assert vlans(c) == [VLAN]
    check_nics(c)


@pytest.mark.parametrize(
    "props, message",
    [
        (
            {"nic:0:model": "virtio", "nic:0:dhcp": "auto", "nic:0:vlan": VLAN},
            "nic:0:dhcp and nic:0:vlan exclude each other: a NIC is on the public network or on a VLAN",
        ),
        ({"nic:0:model": "virtio", "nic:0:dhcp": "2001:db8::1"}, "nic:0:dhcp must be an IPv4 address or auto"),
        (
            {"nic:0:model": "virtio", "nic:0:dhcp": "192.0.2.7", "nic:1:model": "virtio", "nic:1:dhcp": "192.0.2.7"},
            "nic:1:dhcp: 192.0.2.7 is already on nic:0",
        ),
    ],
)
def test_nic_wiring_no_network_can_give(props, message):
    with pytest.raises(ConfigRefusal) as caught:
        check_nics(config(**props))
    assert wire_refusal(caught.value).message == message  # as the ElasticHosts codec says it
