"""`networks` on an ECS create: the shapes ecsapi sends (nulls for what is not given), ranges,
the refusals, and the NICs the engine's server gets."""

from __future__ import annotations

import pytest

from elastic_api.errors import Invalid
from elastic_api.model.ecs_networks import NetworkRequest, parse_networks, vlan_nics
from elastic_api.model.server import Nic


def test_vlans_and_ranges_in_order():
    assert parse_networks([]) == ()
    given = [
        {"name": "lan", "vlans": [{"vlan_id": 5, "pvid": True, "vlans": None}, {"vlan_id": 4094}]},
        {"name": " trunk ", "vlans": [{"vlan_id": None, "pvid": None, "vlans": "1-3"}]},
    ]
    assert parse_networks(given) == (NetworkRequest("lan", (5, 4094)), NetworkRequest("trunk", (1, 2, 3)))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("lan", "networks must be a list"),
        ([1], "networks[0] must be an object"),
        ([{"vlans": [{"vlan_id": 1}]}], "networks[0].name"),
        ([{"name": "", "vlans": [{"vlan_id": 1}]}], "networks[0].name"),
        ([{"name": "a\nb", "vlans": [{"vlan_id": 1}]}], "networks[0].name"),
        ([{"name": "n" * 65, "vlans": [{"vlan_id": 1}]}], "networks[0].name"),
        ([{"name": "n"}], "networks[0].vlans must be a list"),
        ([{"name": "n", "vlans": []}], "networks[0].vlans must be a list of at least one"),
        ([{"name": "n", "vlans": [{"vlan_id": 1}], "mtu": 9000}], "unknown field mtu"),
        ([{"name": "n", "vlans": [5]}], "networks[0].vlans[0] must be an object"),
        ([{"name": "n", "vlans": [{}]}], "one of vlan_id or vlans"),
        ([{"name": "n", "vlans": [{"vlan_id": 1, "vlans": "2-3"}]}], "one of vlan_id or vlans"),
        ([{"name": "n", "vlans": [{"vlan_id": 0}]}], "from 1 to 4094"),
        ([{"name": "n", "vlans": [{"vlan_id": 4095}]}], "from 1 to 4094"),
        ([{"name": "n", "vlans": [{"vlan_id": "5"}]}], "vlan_id must be a whole number"),
        ([{"name": "n", "vlans": [{"vlan_id": True}]}], "vlan_id must be a whole number"),
        ([{"name": "n", "vlans": [{"vlan_id": 1, "pvid": "yes"}]}], "pvid must be true or false"),
        ([{"name": "n", "vlans": [{"vlan_id": 1, "tag": 1}]}], "unknown field tag"),
        ([{"name": "n", "vlans": [{"vlans": "5-5"}]}], "1 <= a < b <= 4094"),
        ([{"name": "n", "vlans": [{"vlans": "6-5"}]}], "1 <= a < b <= 4094"),
        ([{"name": "n", "vlans": [{"vlans": "0-2"}]}], "1 <= a < b <= 4094"),
        ([{"name": "n", "vlans": [{"vlans": "4093-4095"}]}], "1 <= a < b <= 4094"),
        ([{"name": "n", "vlans": [{"vlans": "1-"}]}], "must be a range a-b"),
        ([{"name": "n", "vlans": [{"vlans": " 1-2"}]}], "must be a range a-b"),
        ([{"name": "n", "vlans": [{"vlans": 12}]}], "must be a range a-b"),
        ([{"name": "n", "vlans": [{"vlans": "1-4094"}]}], "at most 7 NICs on VLANs"),
        ([{"name": "n", "vlans": [{"vlan_id": 3}, {"vlans": "2-4"}]}], "VLAN 3 is named twice"),
        ([{"name": "a", "vlans": [{"vlan_id": 3}]}, {"name": "b", "vlans": [{"vlan_id": 3}]}], "networks[1]: VLAN 3"),
        (
            [{"name": "n", "vlans": [{"vlan_id": 1, "pvid": True}, {"vlan_id": 2, "pvid": True}]}],
            "one VLAN may be the pvid",
        ),
        ([{"name": f"n{i}", "vlans": [{"vlan_id": i}]} for i in range(1, 9)], "at most 7 NICs on VLANs"),
    ],
)
def test_refusals_name_networks(value, words):
    with pytest.raises(Invalid, match="networks") as refused:
        parse_networks(value)
    assert words in refused.value.message


def test_seven_vlans_fit():
    assert len(parse_networks([{"name": "n", "vlans": [{"vlans": "1-7"}]}])[0].vlan_ids) == 7


def test_one_virtio_nic_per_vlan_after_the_public_one():
    assert vlan_nics(("a", "b")) == (Nic(1, "virtio", vlan="a"), Nic(2, "virtio", vlan="b"))
    assert vlan_nics(()) == ()
