"""A change to a server's configuration: what a patch keeps, replaces and removes, the rules the
result must keep, and which changes a running server takes."""

from __future__ import annotations

import pytest

from elastic_api.model.device import Device
from elastic_api.model.server import (
    DriveSlot,
    DriveTwice,
    MacShared,
    MediaWithoutDrive,
    Nic,
    NicWithoutModel,
    ServerConfig,
    BootNotConfigured,
    derived_mac,
)
from elastic_api.model.server_patch import (
    KEEP,
    DriveChange,
    Field,
    LiveChangeRefused,
    NicChange,
    ServerPatch,
    apply_patch,
    changed_fields,
    check_live,
    is_live_field,
)

SERVER = "0f0e0d0c-0b0a-4908-8706-050403020100"
D1 = "aaaaaaaa-1111-4111-8111-111111111111"
D2 = "bbbbbbbb-2222-4222-8222-222222222222"
VLAN = "dddddddd-4444-4444-8444-444444444444"
IDE0, IDE1, VIRTIO0 = Device("ide", 0, 0), Device("ide", 1, 0), Device("virtio", 0, 0)
OLD = ServerConfig(
    name="web",
    cpu=2000,
    mem=512,
    drives=(DriveSlot(IDE0, D1, "cdrom"),),
    boot=(IDE0,),
    nics=(Nic(0, "virtio", derived_mac(SERVER, 0), vlan=VLAN),),
    tags=("a",),
    user=(("k", "v"),),
)


def test_an_empty_patch_changes_nothing() -> None:
    assert apply_patch(OLD, ServerPatch(), SERVER) == OLD
    assert ServerPatch().cpu is KEEP


def test_given_fields_replace_the_rest_stays() -> None:
    new = apply_patch(OLD, ServerPatch(cpu=4000, tags=("b", "c"), user={"x": "1", "k": None}), SERVER)
    assert (new.cpu, new.tags, new.user) == (4000, ("b", "c"), (("x", "1"),))
    assert (new.drives, new.nics, new.name, new.boot) == (OLD.drives, OLD.nics, OLD.name, OLD.boot)
    assert changed_fields(OLD, new) == [Field("cpu"), Field("tags"), Field("user", None, "k"), Field("user", None, "x")]


def test_optional_fields_are_removed_by_their_default() -> None:
    start = apply_patch(OLD, ServerPatch(smp=2, persistent=True, vnc="auto", vnc_password="pw", vnc_tls=True), SERVER)
    back = apply_patch(
        start, ServerPatch(smp=None, persistent=False, vnc=None, vnc_password=None, vnc_tls=False), SERVER
    )
    assert back == OLD


def test_detaching_a_drive_detaches_its_media_unless_given() -> None:
    without_boot = ServerPatch(boot=())
    new = apply_patch(OLD, ServerPatch(boot=(), drives={IDE0: DriveChange(drive=None)}), SERVER)
    assert new.drives == ()
    # Attached again: the media is back to disk, as the old one went with the drive.
    again = apply_patch(
        apply_patch(OLD, without_boot, SERVER), ServerPatch(drives={IDE0: DriveChange(drive=D2)}), SERVER
    )
    assert again.drives == (DriveSlot(IDE0, D2, "cdrom"),)  # replacing the drive keeps the media
    with pytest.raises(MediaWithoutDrive) as caught:
        apply_patch(OLD, ServerPatch(boot=(), drives={IDE0: DriveChange(drive=None, media="cdrom")}), SERVER)
    assert caught.value.device == IDE0
    with pytest.raises(MediaWithoutDrive):
        apply_patch(OLD, ServerPatch(drives={IDE1: DriveChange(media="cdrom")}), SERVER)
    assert apply_patch(OLD, ServerPatch(drives={IDE0: DriveChange(media=None)}), SERVER).drives == (
        DriveSlot(IDE0, D1, "disk"),
    )


def test_a_drive_attached_twice_names_the_later_device() -> None:
    with pytest.raises(DriveTwice) as caught:
        apply_patch(OLD, ServerPatch(drives={VIRTIO0: DriveChange(drive=D1)}), SERVER)
    assert (caught.value.device, caught.value.first) == (VIRTIO0, IDE0)


def test_removing_a_nic_model_removes_the_nic_and_what_it_had() -> None:
    assert apply_patch(OLD, ServerPatch(nics={0: NicChange(model=None)}), SERVER).nics == ()
    with pytest.raises(NicWithoutModel) as caught:
        apply_patch(OLD, ServerPatch(nics={0: NicChange(model=None, vlan=VLAN, dhcp="auto")}), SERVER)
    assert (caught.value.index, caught.value.parts) == (0, ("dhcp", "vlan"))
    with pytest.raises(NicWithoutModel):
        apply_patch(OLD, ServerPatch(nics={1: NicChange(dhcp="auto")}), SERVER)


def test_nic_macs() -> None:
    kept = apply_patch(OLD, ServerPatch(nics={0: NicChange(model="e1000")}), SERVER)
    assert kept.nics[0].mac == OLD.nics[0].mac
    added = apply_patch(OLD, ServerPatch(nics={1: NicChange(model="e1000")}), SERVER)
    assert added.nics[1] == Nic(1, "e1000", derived_mac(SERVER, 1))
    given = apply_patch(OLD, ServerPatch(nics={0: NicChange(mac="02:00:00:00:00:07")}), SERVER)
    assert apply_patch(given, ServerPatch(nics={0: NicChange(mac=None)}), SERVER).nics[0].mac == derived_mac(SERVER, 0)
    with pytest.raises(MacShared):
        apply_patch(OLD, ServerPatch(nics={1: NicChange(model="e1000", mac=derived_mac(SERVER, 0))}), SERVER)


def test_boot_must_still_name_configured_devices() -> None:
    with pytest.raises(BootNotConfigured) as caught:
        apply_patch(OLD, ServerPatch(drives={IDE0: DriveChange(drive=None)}), SERVER)
    assert caught.value.entry == IDE0


@pytest.mark.parametrize(
    "part",
    [
        Field("name"),
        Field("cpu"),
        Field("persistent"),
        Field("tags"),
        Field("vnc_password"),
        Field("user", None, "anything"),
    ],
)
def test_live_fields(part: Field) -> None:
    assert is_live_field(part)


def test_an_active_server_takes_only_live_changes() -> None:
    new = apply_patch(
        OLD,
        ServerPatch(name="renamed", cpu=500, persistent=True, tags=("t",), user={"k": "w"}, vnc_password="b"),
        SERVER,
    )
    assert set(check_live(OLD, new)) == {
        Field("name"),
        Field("cpu"),
        Field("persistent"),
        Field("tags"),
        Field("vnc_password"),
        Field("user", None, "k"),
    }
    for patch, refused in [
        (ServerPatch(mem=1024), [Field("mem")]),
        (ServerPatch(smp=2), [Field("smp")]),
        (
            ServerPatch(drives={IDE1: DriveChange(drive=D2)}),
            [Field("drives", "drive", IDE1), Field("drives", "media", IDE1)],
        ),
        (ServerPatch(nics={0: NicChange(model="e1000")}), [Field("nics", "model", 0)]),
        (ServerPatch(boot=(), avoid_servers=(SERVER,)), [Field("boot"), Field("avoid_servers")]),
    ]:
        with pytest.raises(LiveChangeRefused) as caught:
            check_live(OLD, apply_patch(OLD, patch, SERVER))
        assert set(caught.value.fields) == set(refused)


def test_setting_an_unchanged_value_is_not_a_change() -> None:
    assert check_live(OLD, apply_patch(OLD, ServerPatch(mem=512, smp=None, tags=("a",)), SERVER)) == []
