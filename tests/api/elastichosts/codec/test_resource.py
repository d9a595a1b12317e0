"""ElasticHosts resource keys: what create and set accept, and the info rendered back (golden)."""

from __future__ import annotations

import pytest

from elastic_api.api.elastichosts.codec.resource import parse_changes, parse_spec, to_info
from elastic_api.api.elastichosts.properties import parse_text, render_properties
from elastic_api.errors import UsageError
from elastic_api.model.resource import PoolInfo, Resource, ResourceChanges, ResourceSpec, apply_changes, new_resource

VLAN = "0ddba11a-0000-4000-8000-000000000000"
POOL = PoolInfo(netmask="255.255.255.0", gateway="192.0.2.1", nameserver="192.0.2.53")


def test_keys_settable_read_only_and_unknown():
    props = {"name": "  web  ", "tags": "a b a", "user:x": "1", "user:y": ""}
    assert parse_changes(props) == ResourceChanges(name="web", tags=("a", "b"), user_keys={"user:x": "1", "user:y": ""})
    assert parse_spec(props) == ResourceSpec(name="web", tags=("a", "b"), user_keys={"user:x": "1", "user:y": ""})
    assert parse_spec({}) == ResourceSpec() and parse_changes({}) == ResourceChanges()
    for key in ("resource", "type", "user", "netmask", "gateway", "nameserver"):
        for parse in (parse_spec, parse_changes):
            with pytest.raises(UsageError, match=f"^{key} is read-only$"):
                parse({key: "x"})
    for key in ("colour", "user:", "size"):
        with pytest.raises(UsageError, match=f"^unknown key: {key}$"):
            parse_changes({key: "x"})


@pytest.mark.parametrize(
    "props, word",
    [
        ({"name": "a\x1bb"}, "^name must not contain control characters$"),
        ({"tags": "a\u2028b"}, "^tags must not contain control characters$"),
        ({"tags": "x" * 129}, "^tags must be at most 128 characters$"),
        ({"user:x": "a\tb"}, "^user:x must not contain control characters$"),
        ({"name": "x" * 257}, "^name must be at most 256 characters$"),
        ({"colour": "red", "type": "ip"}, "^unknown key: colour$"),  # the first bad key is named
    ],
)
def test_values_refused(props, word):
    with pytest.raises(UsageError, match=word):
        parse_spec(props)


def test_create_set_and_info():
    created = new_resource("192.0.2.7", "ip", "u", parse_spec({"user:x": "1", "user:gone": ""}), created=5)
    assert created == Resource("192.0.2.7", "ip", "u", "", (), {"user:x": "1"}, 5)
    changed = apply_changes(created, parse_changes({"name": "n", "user:x": "", "user:z": "2"}))
    assert (changed.name, changed.tags, changed.user_keys) == ("n", (), {"user:z": "2"})
    assert to_info(changed, POOL) == {
        "resource": "192.0.2.7",
        "type": "ip",
        "user": "u",
        "name": "n",
        "tags": [],
        "netmask": "255.255.255.0",
        "gateway": "192.0.2.1",
        "nameserver": "192.0.2.53",
        "user:z": "2",
    }
    vlan = new_resource(VLAN, "vlan", "u", parse_spec({"tags": "t"}), created=1)
    assert to_info(vlan, POOL) == {"resource": VLAN, "type": "vlan", "user": "u", "name": "", "tags": ["t"]}
    assert "netmask" not in to_info(created)  # no pool given: nothing said of it


GOLDEN = """\
resource 192.0.2.7
type ip
user 11111111-2222-3333-4444-555555555555
name web server
tags a b
netmask 255.255.255.0
gateway 192.0.2.1
nameserver 192.0.2.53
user:a 1
user:b x\\ny
"""


def test_round_trip_golden():
    spec = parse_spec(parse_text(b"user:b x\\ny\nname web server\ntags a b\nuser:a 1\n"))
    resource = new_resource("192.0.2.7", "ip", "11111111-2222-3333-4444-555555555555", spec, created=1)
    assert render_properties(to_info(resource, POOL)) == GOLDEN
    settable = {k: v for k, v in parse_text(GOLDEN.encode()).items() if k in ("name", "tags") or k.startswith("user:")}
    assert parse_spec(settable) == spec
