"""ElasticHosts server keys: parsing, validation, set merging, live changes and rendering, with
the messages naming wire keys."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_api.api.elastichosts.codec import server as codec
from elastic_api.api.elastichosts.codec.device import device_name, parse_device
from elastic_api.api.elastichosts.codec.server import to_info, to_props
from elastic_api.errors import BusyError, UsageError
from elastic_api.api.elastichosts.properties import parse_json, parse_text, render_json, render_properties
from elastic_api.model.device import Device
from elastic_api.model.server import DriveSlot, Nic, ServerConfig, derived_mac, referenced_drives, settle, vcpu_count
from elastic_api.model.resource import Lease
from elastic_api.model.server_patch import (
    DriveChange,
    LiveChangeRefused,
    NicChange,
    ServerPatch,
    apply_patch,
    changed_fields,
    check_live,
)
from elastic_api.model.server_record import ServerRecord
from elastic_api.service.servers import ServerView
from elastic_api.hypervisor.base import DomainStats

SERVER = "0f0e0d0c-0b0a-4908-8706-050403020100"
OTHER_SERVER = "1f0e0d0c-0b0a-4908-8706-050403020100"
D1 = "aaaaaaaa-1111-4111-8111-111111111111"
D2 = "bbbbbbbb-2222-4222-8222-222222222222"
D3 = "cccccccc-3333-4333-8333-333333333333"
VLAN = "dddddddd-4444-4444-8444-444444444444"
BASE = {"name": "web", "cpu": "2000", "mem": "512"}


def parse_config(props: Mapping[str, str], server: str) -> ServerConfig:
    """A create's configuration, as the service stores it for server `server`."""
    return settle(codec.parse_config(props), server)


def apply_set(old: ServerConfig, props: Mapping[str, str], server: str) -> ServerConfig:
    """A set's result, with the model's refusals said in wire words as the handler says them."""
    patch = codec.parse_patch(props)
    with codec.wire_errors(props.keys()):
        return apply_patch(old, patch, server)


def changed_keys(old: ServerConfig, new: ServerConfig) -> list[str]:
    return sorted(codec.field_key(part) for part in changed_fields(old, new))


def check_live_set(old: ServerConfig, new: ServerConfig, given: Collection[str] = ()) -> list[str]:
    try:
        return sorted(codec.field_key(part) for part in check_live(old, new))
    except LiveChangeRefused as e:
        raise codec.wire_live_refusal(e, given) from None


def attached_drives(config: ServerConfig) -> dict[str, str]:
    return {device_name(slot.device): slot.drive for slot in config.drives}


def dev(name: str) -> Device:
    device = parse_device(name)
    assert device is not None
    return device


def parse(**extra: str) -> ServerConfig:
    return parse_config({**BASE, **{k.replace("__", ":"): v for k, v in extra.items()}}, SERVER)


def parse_props(props: dict[str, str]) -> ServerConfig:
    return parse_config({**BASE, **props}, SERVER)


# --- positive ------------------------------------------------------------------------------


def test_minimal_server_has_defaults() -> None:
    config = parse()
    assert config == ServerConfig(name="web", cpu=2000, mem=512)
    assert config.smp is None and not config.persistent and config.vnc is None
    assert to_info(config) == {"name": "web", "cpu": 2000, "smp": "auto", "mem": 512, "persistent": "false"}


def test_full_configuration() -> None:
    props = {
        "name": "  db server  ",
        "cpu": "3000",
        "smp": "2",
        "mem": "2048",
        "persistent": "TRUE",
        "ide:0:0": D1.upper(),
        "ide:1:0": D2,
        "ide:1:0:media": "cdrom",
        "block:3": D3,
        "boot": "ide:1:0 ide:0:0",
        "nic:0:model": "e1000",
        "nic:0:dhcp": "auto",
        "nic:1:model": "virtio",
        "nic:1:vlan": VLAN,
        "nic:1:mac": "02:AB:cd:00:00:01",
        "vnc": "auto",
        "vnc:password": "s3cret",
        "vnc:tls": "on",
        "tags": "db prod db",
        "user:owner": "team a",
        "avoid:drives": D2,
        "avoid:servers": f"{OTHER_SERVER} {OTHER_SERVER}",
    }
    config = parse_config(props, SERVER)
    assert config.name == "db server"
    assert config.smp == 2 and config.persistent
    assert config.drives == (
        DriveSlot(dev("ide:0:0"), D1, "disk"),
        DriveSlot(dev("ide:1:0"), D2, "cdrom"),
        DriveSlot(dev("block:3"), D3, "disk"),
    )
    assert config.drives[2].device == Device("virtio", 0, 3)
    assert config.boot == (dev("ide:1:0"), dev("ide:0:0"))
    assert config.nics == (
        Nic(0, "e1000", derived_mac(SERVER, 0), dhcp="auto"),
        Nic(1, "virtio", "02:ab:cd:00:00:01", vlan=VLAN),
    )
    assert (config.vnc, config.vnc_password, config.vnc_tls) == ("auto", "s3cret", True)
    assert config.tags == ("db", "prod")
    assert config.user == (("owner", "team a"),)
    assert config.avoid_servers == (OTHER_SERVER,)

    info = to_info(config)
    assert info == {
        "name": "db server",
        "cpu": 3000,
        "smp": 2,
        "mem": 2048,
        "persistent": "true",
        "ide:0:0": D1,
        "ide:0:0:media": "disk",
        "ide:1:0": D2,
        "ide:1:0:media": "cdrom",
        "block:3": D3,
        "block:3:media": "disk",
        "boot": ["ide:1:0", "ide:0:0"],
        "nic:0:model": "e1000",
        "nic:0:dhcp": "auto",
        "nic:0:mac": derived_mac(SERVER, 0),
        "nic:1:model": "virtio",
        "nic:1:vlan": VLAN,
        "nic:1:mac": "02:ab:cd:00:00:01",
        "vnc": "auto",
        "vnc:password": "s3cret",
        "vnc:tls": "on",
        "tags": ["db", "prod"],
        "user:owner": "team a",
        "avoid:drives": [D2],
        "avoid:servers": [OTHER_SERVER],
    }
    # Numbers are JSON integers, multi-valued keys arrays of strings.
    decoded = json.loads(render_json(info))
    assert decoded["cpu"] == 3000 and decoded["smp"] == 2 and decoded["tags"] == ["db", "prod"]
    assert parse_config(to_props(config), SERVER) == config


def test_round_trip_through_both_wire_formats() -> None:
    config = parse(ide__0__0=D1, nic__0__model="virtio", tags="a b", vnc="192.0.2.7", boot="nic:0 ide:0:0")
    info = to_info(config)
    assert parse_config(parse_text(render_properties(info).encode()), SERVER) == config
    assert parse_config(parse_json(render_json(info).encode()), SERVER) == config


def test_every_device_name_is_accepted() -> None:
    devices = [
        "ide:0:0",
        "ide:0:1",
        "ide:1:0",
        "ide:1:1",
        *(f"scsi:0:{n}" for n in range(8)),
        *(f"block:{n}" for n in range(8)),
    ]
    drives = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(len(devices))]
    config = parse_props(dict(zip(devices, drives)))
    assert [device_name(slot.device) for slot in config.drives] == devices
    assert attached_drives(config) == dict(zip(devices, drives))


def test_devices_are_listed_in_bus_order() -> None:
    config = parse_props({"block:0": D1, "ide:1:1": D2, "scsi:0:2": D3})
    assert [device_name(slot.device) for slot in config.drives] == ["ide:1:1", "scsi:0:2", "block:0"]


@pytest.mark.parametrize("model", ["e1000", "rtl8139", "virtio", "VirtIO"])
def test_nic_models(model: str) -> None:
    assert parse(nic__0__model=model).nics[0].model == model.lower()


@pytest.mark.parametrize("value, expected", [("auto", None), ("AUTO", None), ("1", 1), ("128", 128)])
def test_smp(value: str, expected: int | None) -> None:
    assert parse(smp=value).smp == expected


def test_ip_values_are_canonical() -> None:
    config = parse(vnc="2001:DB8::1", nic__0__model="virtio", nic__0__dhcp=" 192.0.2.10 ")
    assert config.vnc == "2001:db8::1"
    assert config.nics[0].dhcp == "192.0.2.10"


def test_empty_values_mean_absent_on_create() -> None:
    assert parse(vnc="", tags="", **{"user__x": ""}) == parse()


def test_derived_mac_is_stable_local_unicast_and_distinct() -> None:
    mac = derived_mac(SERVER, 0)
    assert mac == derived_mac(SERVER, 0)
    first = int(mac[:2], 16)
    assert first & 0b10 and not first & 0b01  # locally administered, unicast
    assert len({derived_mac(SERVER, 0), derived_mac(SERVER, 1), derived_mac(OTHER_SERVER, 0)}) == 3
    assert parse(nic__1__model="virtio").nics[0].mac == derived_mac(SERVER, 1)


def test_vcpu_count() -> None:
    assert vcpu_count(parse(cpu="2000"), 2000) == 1
    assert vcpu_count(parse(cpu="2001"), 2000) == 2
    assert vcpu_count(parse(cpu="100"), 2000) == 1
    assert vcpu_count(parse(cpu="256000"), 1000) == 128  # never past SMP_MAX
    assert vcpu_count(parse(cpu="500", smp="4"), 2000) == 4


def test_referenced_drives() -> None:
    config = parse_props({"ide:0:0": D1, "block:0": D2, "avoid:drives": f"{D2} {D3}"})
    assert referenced_drives(config) == [D1, D2, D3]


# --- negative ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "props, key",
    [
        ({"colour": "red"}, "colour"),
        ({"ide:2:0": D1}, "ide:2:0"),
        ({"ide:0:2": D1}, "ide:0:2"),
        ({"scsi:1:0": D1}, "scsi:1:0"),
        ({"scsi:0:8": D1}, "scsi:0:8"),
        ({"block:8": D1}, "block:8"),
        ({"virtio:0": D1}, "virtio:0"),
        ({"sata:0:0": D1}, "sata:0:0"),
        ({"nic:8:model": "virtio"}, "nic:8:model"),
        ({"nic:01:model": "virtio"}, "nic:01:model"),
        ({"nic:0:speed": "fast"}, "nic:0:speed"),
        ({"server": SERVER}, "server"),
        ({"status": "active"}, "status"),
        ({"user": SERVER}, "user"),
        ({"ide:0:0": "not-a-uuid"}, "ide:0:0"),
        ({"ide:0:0": D1, "ide:0:0:media": "floppy"}, "ide:0:0:media"),
        ({"block:0": D1, "block:0:media": "cdrom"}, "block:0:media"),
        ({"ide:0:0:media": "disk"}, "ide:0:0:media"),
        ({"ide:0:0": D1, "ide:0:1": D1}, "ide:0:1"),
        ({"nic:0:model": "ne2k_pci"}, "nic:0:model"),
        ({"nic:0:dhcp": "auto"}, "nic:0:dhcp"),
        ({"nic:0:model": "virtio", "nic:0:dhcp": "192.0.2.300"}, "nic:0:dhcp"),
        ({"nic:0:model": "virtio", "nic:0:vlan": "vlan-1"}, "nic:0:vlan"),
        ({"nic:0:model": "virtio", "nic:0:mac": "01:00:5e:00:00:01"}, "nic:0:mac"),  # multicast
        ({"nic:0:model": "virtio", "nic:0:mac": "ff:ff:ff:ff:ff:ff"}, "nic:0:mac"),  # broadcast
        ({"nic:0:model": "virtio", "nic:0:mac": "00:00:00:00:00:00"}, "nic:0:mac"),
        ({"nic:0:model": "virtio", "nic:0:mac": "fe:54:00:00:00:01"}, "nic:0:mac"),  # libvirt's tap prefix
        ({"nic:0:model": "virtio", "nic:0:mac": "02:00:00:00:00"}, "nic:0:mac"),
        ({"nic:0:model": "virtio", "nic:0:mac": "02-00-00-00-00-01"}, "nic:0:mac"),
        ({"nic:0:model": "virtio", "nic:0:mac": "02:00:00:00:00:0g"}, "nic:0:mac"),
        ({"vnc:password": "123456789"}, "vnc:password"),
        ({"vnc:password": "pässwd"}, "vnc:password"),
        ({"vnc:tls": "yes"}, "vnc:tls"),
        ({"vnc": "localhost"}, "vnc"),
        ({"boot": "ide:0:0"}, "boot"),
        ({"ide:0:0": D1, "boot": "ide:0:1"}, "boot"),
        ({"ide:0:0": D1, "boot": "ide:0:0 ide:0:0"}, "boot"),
        ({"ide:0:0": D1, "boot": "hd"}, "boot"),
        ({"boot": "nic:0"}, "boot"),
        ({"cpu": "99"}, "cpu"),
        ({"cpu": "256001"}, "cpu"),
        ({"cpu": "2 GHz"}, "cpu"),
        ({"cpu": "-1"}, "cpu"),
        ({"mem": "15"}, "mem"),
        ({"mem": "1048577"}, "mem"),
        ({"mem": "1.5"}, "mem"),
        ({"smp": "0"}, "smp"),
        ({"smp": "129"}, "smp"),
        ({"smp": "many"}, "smp"),
        ({"persistent": "yes"}, "persistent"),
        ({"name": "a\tb"}, "name"),
        ({"name": "x" * 257}, "name"),
        ({"tags": "x" * 129}, "tags"),
        ({"tags": " ".join(f"t{n}" for n in range(65))}, "tags"),
        ({"user:note": "\x07"}, "user:note"),
        ({"avoid:drives": f"{D1} nope"}, "avoid:drives"),
        ({"avoid:servers": "nope"}, "avoid:servers"),
    ],
)
def test_bad_keys_and_values_are_usage_errors_naming_the_key(props: dict[str, str], key: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_props(props)
    assert key in caught.value.message


@pytest.mark.parametrize("missing", ["name", "cpu", "mem"])
def test_required_keys(missing: str) -> None:
    props = dict(BASE)
    del props[missing]
    with pytest.raises(UsageError, match=f"{missing} is required"):
        parse_config(props, SERVER)
    with pytest.raises(UsageError, match=f"{missing} is required"):
        parse_config({**BASE, missing: "  "}, SERVER)


def test_two_nics_may_not_share_a_mac() -> None:
    with pytest.raises(UsageError, match="MAC"):
        parse_props(
            {
                "nic:0:model": "virtio",
                "nic:1:model": "virtio",
                "nic:0:mac": "02:00:00:00:00:01",
                "nic:1:mac": "02:00:00:00:00:01",
            }
        )


def test_eight_character_vnc_password_is_fine() -> None:
    assert parse(vnc__password="12345678").vnc_password == "12345678"


# --- set -----------------------------------------------------------------------------------


def test_set_changes_given_keys_and_keeps_the_rest() -> None:
    old = parse(ide__0__0=D1, nic__0__model="virtio", tags="a")
    new = apply_set(old, {"cpu": "4000", "tags": "b c", "user:x": "1"}, SERVER)
    assert new.cpu == 4000 and new.tags == ("b", "c") and new.user == (("x", "1"),)
    assert new.drives == old.drives and new.nics == old.nics and new.name == old.name
    assert changed_keys(old, new) == ["cpu", "tags", "user:x"]


def test_set_with_empty_value_removes_a_device_with_its_media() -> None:
    old = parse(ide__0__0=D1, ide__0__0__media="cdrom", block__0=D2)
    new = apply_set(old, {"ide:0:0": ""}, SERVER)
    assert attached_drives(new) == {"block:0": D2}
    assert "ide:0:0:media" not in to_info(new)


def test_set_removing_a_nic_model_removes_the_nic() -> None:
    old = parse(nic__0__model="virtio", nic__0__vlan=VLAN, nic__0__mac="02:00:00:00:00:09")
    assert apply_set(old, {"nic:0:model": ""}, SERVER).nics == ()


def test_set_keeps_derived_macs() -> None:
    old = parse(nic__0__model="virtio")
    assert apply_set(old, {"nic:0:model": "e1000"}, SERVER).nics[0].mac == old.nics[0].mac


def test_set_errors() -> None:
    old = parse(ide__0__0=D1, boot="ide:0:0")
    with pytest.raises(UsageError, match="name is required"):
        apply_set(old, {"name": ""}, SERVER)
    with pytest.raises(UsageError, match="unknown key: status"):
        apply_set(old, {"status": "stopped"}, SERVER)
    with pytest.raises(UsageError, match="boot: ide:0:0 is not a configured device"):
        apply_set(old, {"ide:0:0": ""}, SERVER)
    with pytest.raises(UsageError, match="vnc:password"):
        apply_set(old, {"vnc:password": "x" * 9}, SERVER)


def test_an_active_server_takes_only_live_keys() -> None:
    old = parse(ide__0__0=D1, vnc="auto", vnc__password="a")
    new = apply_set(
        old,
        {"name": "renamed", "cpu": "500", "persistent": "true", "tags": "t", "user:k": "v", "vnc:password": "b"},
        SERVER,
    )
    assert check_live_set(old, new) == ["cpu", "name", "persistent", "tags", "user:k", "vnc:password"]
    for props in (
        {"mem": "1024"},
        {"smp": "2"},
        {"ide:0:1": D2},
        {"ide:0:0": ""},
        {"nic:0:model": "virtio"},
        {"vnc": "192.0.2.1"},
        {"boot": "ide:0:0"},
        {"avoid:servers": OTHER_SERVER},
    ):
        with pytest.raises(BusyError) as caught:
            check_live_set(old, apply_set(old, props, SERVER), props)
        assert next(iter(props)) in caught.value.message


def test_setting_an_unchanged_value_is_not_a_change() -> None:
    old = parse(mem="512", smp="auto")
    assert check_live_set(old, apply_set(old, {"mem": "512", "smp": "AUTO"}, SERVER)) == []


# --- golden: the exact words, and the typed values behind them -----------------------------------


def set_error(old: ServerConfig, props: dict[str, str]) -> str:
    """The message a set answers, made as the handler makes it."""
    with pytest.raises((UsageError, BusyError)) as caught:
        try:
            patch = codec.parse_patch(props)
        except UsageError:
            codec.check_set(old, props)
            raise
        with codec.wire_errors(props.keys()):
            codec.check_set(old, props)
            apply_patch(old, patch, SERVER)
    return caught.value.message


@pytest.mark.parametrize(
    "props, message",
    [
        ({"ide:0:0": D1, "block:0": D1}, f"block:0: drive {D1} is already attached as ide:0:0"),
        ({"block:0": D1, "ide:0:0": D1}, f"ide:0:0: drive {D1} is already attached as block:0"),
        ({"ide:0:0:media": "disk"}, "ide:0:0:media given without ide:0:0"),
        ({"ide:0:0": D1, "ide:0:0:media": "floppy"}, "ide:0:0:media must be disk or cdrom"),
        (
            {"block:0": D1, "block:0:media": "cdrom"},
            "block:0:media cannot be cdrom: virtio block devices have no removable media",
        ),
        ({"nic:0:vlan": VLAN, "nic:0:dhcp": "auto"}, "nic:0:dhcp given without nic:0:model"),
        ({"nic:0:model": "ne2k_pci"}, "nic:0:model must be one of e1000, rtl8139, virtio"),
        ({"nic:8:model": "virtio"}, "unknown key: nic:8:model (NICs are nic:0 to nic:7)"),
        (
            {
                "nic:0:model": "virtio",
                "nic:1:model": "virtio",
                "nic:0:mac": "02:00:00:00:00:01",
                "nic:1:mac": "02:00:00:00:00:01",
            },
            "two NICs of one server must not share a MAC address",
        ),
        ({"boot": "ide:0:0"}, "boot: ide:0:0 is not a configured device"),
        ({"nic:1:model": "virtio", "boot": "nic:01"}, "boot: nic:01 is not a configured device"),
        ({"ide:0:0": D1, "boot": "IDE:0:0 ide:0:0"}, "boot: ide:0:0 given twice"),
        ({"boot": "hd"}, "boot: 'hd' is not a device name"),
    ],
)
def test_create_messages(props: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_props(props)
    assert caught.value.message == message
    assert type(caught.value) is UsageError  # the plain kind: the dialect's words, not the model's class


OLD = {"ide:0:0": D1, "nic:0:model": "virtio", "boot": "ide:0:0"}


@pytest.mark.parametrize(
    "props, message",
    [
        # Which bad key comes first depends on the server: a NIC part without the NIC's model...
        ({"nic:1:dhcp": "x"}, "nic:1:dhcp given without nic:1:model"),
        ({"nic:0:dhcp": "x"}, "nic:0:dhcp must be an IP address: 'x'"),
        ({"block:0:media": "x"}, "block:0:media given without block:0"),
        ({"ide:0:0:media": "x"}, "ide:0:0:media must be disk or cdrom"),
        # ...and the rules across fields, with the keys the client sent.
        ({"block:1": D1}, f"block:1: drive {D1} is already attached as ide:0:0"),
        ({"ide:0:0": ""}, "boot: ide:0:0 is not a configured device"),
        ({"ide:0:0": "", "boot": "", "ide:0:0:media": "cdrom"}, "ide:0:0:media given without ide:0:0"),
        ({"nic:0:model": "", "nic:0:vlan": VLAN}, "nic:0:vlan given without nic:0:model"),
        (
            {"nic:1:model": "virtio", "nic:1:mac": derived_mac(SERVER, 0)},
            "two NICs of one server must not share a MAC address",
        ),
        ({"name": " ", "cpu": "x"}, "name is required"),
        ({"colour": "red", "cpu": "x"}, "unknown key: colour"),
    ],
)
def test_set_messages(props: dict[str, str], message: str) -> None:
    assert set_error(parse_props(OLD), props) == message


def test_live_refusals_name_the_key_sent() -> None:
    old = parse_props(OLD)
    for props, key in [
        ({"mem": "1024", "name": "x"}, "mem"),
        ({"ide:0:1": D2}, "ide:0:1"),
        ({"nic:0:model": ""}, "nic:0:model"),
        ({"boot": ""}, "boot"),
    ]:
        try:
            check_live(old, apply_set(old, props, SERVER))
        except LiveChangeRefused as e:
            assert codec.wire_live_refusal(e, props.keys()).message == (
                f"{key} cannot change while the server is active; stop it first"
            )
        else:
            raise AssertionError(props)
    # A key changed only as a consequence is named when the client sent none of the refused ones.
    try:
        check_live(old, apply_set(old, {"ide:0:0": "", "boot": ""}, SERVER))
    except LiveChangeRefused as e:
        assert codec.wire_live_refusal(e, ["user:x"]).message.startswith("boot cannot change")


def test_patches_say_what_a_set_says() -> None:
    patch = codec.parse_patch(
        {
            "cpu": "3000",
            "smp": "",
            "vnc": "AUTO",
            "ide:0:0": "",
            "ide:0:1": D2.upper(),
            "ide:0:1:media": "CDROM",
            "nic:1:model": "",
            "nic:2:mac": "02:00:00:00:00:AA",
            "user:x": "",
            "user:y": "1",
            "boot": "nic:2 ide:0:1",
            "tags": "a b a",
        }
    )
    assert patch == ServerPatch(
        cpu=3000,
        smp=None,
        vnc="auto",
        tags=("a", "b"),
        boot=(2, dev("ide:0:1")),
        drives={dev("ide:0:0"): DriveChange(drive=None), dev("ide:0:1"): DriveChange(D2, "cdrom")},
        nics={1: NicChange(model=None), 2: NicChange(mac="02:00:00:00:00:aa")},
        user={"x": None, "y": "1"},
    )
    assert codec.parse_patch({}) == ServerPatch()


def test_device_names_round_trip() -> None:
    names = ["ide:0:0", "ide:1:1", "scsi:0:0", "scsi:0:7", "block:0", "block:7"]
    assert [device_name(dev(name)) for name in names] == names
    assert dev("block:5") == Device("virtio", 0, 5) and dev("ide:1:0") == Device("ide", 1, 0)
    for bad in ["ide:2:0", "scsi:1:0", "block:8", "virtio:0:0", "IDE:0:0", "ide:0"]:
        assert parse_device(bad) is None


def test_a_server_view_renders_in_the_protocols_order() -> None:
    config = parse_props({"nic:0:model": "virtio", "nic:0:dhcp": "auto", "vnc": "auto", "vnc:password": "pw"})
    record = ServerRecord(SERVER, OTHER_SERVER, config, created=1, status="active", host="h", started=1234)
    view = ServerView(
        record,
        (Lease(SERVER, 0, config.nics[0].mac or "", "192.0.2.9", auto=True),),
        DomainStats(1, 2, 3, 4, {}, sockets=1, cores=1, vnc_port=5900),
        "127.0.0.1",
    )
    info = codec.view_info(view)
    assert list(info) == [
        "server",
        "user",
        "status",
        "name",
        "cpu",
        "smp",
        "mem",
        "persistent",
        "nic:0:model",
        "nic:0:dhcp",
        "nic:0:mac",
        "vnc",
        "vnc:password",
        "started",
        "nic:0:dhcp:ip",
        "rx",
        "tx",
        "rx:packets",
        "tx:packets",
        "smp:sockets",
        "smp:cores",
        "vnc:port",
        "vnc:ip",
    ]
    assert (info["user"], info["started"], info["nic:0:dhcp:ip"], info["vnc:ip"]) == (
        OTHER_SERVER,
        1234,
        "192.0.2.9",
        "127.0.0.1",
    )
    stopped = codec.view_info(ServerView(ServerRecord(SERVER, OTHER_SERVER, config, created=1)))
    assert stopped == codec.record_info(ServerRecord(SERVER, OTHER_SERVER, config, created=1))
    assert "started" not in stopped and stopped["status"] == "stopped"


# --- the patch says what the protocol's merge says --------------------------------------------

WORDS = {
    "name": ["web", " x ", ""],
    "cpu": ["2000", "500", ""],
    "mem": ["512", ""],
    "smp": ["auto", "2", ""],
    "persistent": ["true", "false", ""],
    "ide:0:0": [D1, D2, ""],
    "ide:0:1": [D1, D3, ""],
    "block:0": [D2, D3, ""],
    "ide:0:0:media": ["cdrom", "disk", ""],
    "ide:0:1:media": ["cdrom", ""],
    "block:0:media": ["disk", ""],
    "boot": ["ide:0:0", "nic:0", "nic:1 ide:0:1", ""],
    "nic:0:model": ["virtio", "E1000", ""],
    "nic:0:mac": ["02:00:00:00:00:01", ""],
    "nic:0:dhcp": ["auto", "192.0.2.1", ""],
    "nic:1:model": ["rtl8139", ""],
    "nic:1:vlan": [VLAN, ""],
    "nic:1:mac": ["02:00:00:00:00:02", ""],
    "vnc": ["auto", "192.0.2.5", ""],
    "vnc:password": ["pw", ""],
    "vnc:tls": ["on", "off", ""],
    "tags": ["a b", ""],
    "user:x": ["1", ""],
    "user:y": ["2", ""],
    "avoid:drives": [D1, ""],
    "avoid:servers": [OTHER_SERVER, ""],
}
PROPS = st.dictionaries(st.sampled_from(sorted(WORDS)), st.integers(0, 3), max_size=7).map(
    lambda chosen: {key: WORDS[key][n % len(WORDS[key])] for key, n in chosen.items()}
)


@settings(max_examples=400, deadline=None)
@given(PROPS, PROPS)
def test_a_patch_applies_as_the_keys_merge(created: dict[str, str], changed: dict[str, str]) -> None:
    """model.apply_patch of the codec's patch is the configuration the protocol's merge of the keys
    reads as (check_set), and refuses exactly when the merge does."""
    try:
        old = parse_config({**BASE, **created}, SERVER)
    except UsageError:
        return
    try:
        merged: ServerConfig | None = settle(codec.check_set(old, changed), SERVER)
    except UsageError:
        merged = None
    try:
        patched: ServerConfig | None = apply_patch(old, codec.parse_patch(changed), SERVER)
    except UsageError:
        patched = None
    assert patched == merged
