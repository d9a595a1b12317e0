"""A server's configuration in no dialect's words: the rules across its fields and derived values."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.device import Device
from elastic_api.model.server import (
    BadMedia,
    BadNic,
    BadNicModel,
    Boot,
    BootNotConfigured,
    BootTwice,
    CdromOnVirtio,
    DriveSlot,
    DriveTwice,
    MacShared,
    Nic,
    ServerConfig,
    check_boot,
    check_drives,
    derived_mac,
    mac_of,
    referenced_drives,
    settle,
    validate,
    vcpu_count,
)

SERVER = "0f0e0d0c-0b0a-4908-8706-050403020100"
D1 = "aaaaaaaa-1111-4111-8111-111111111111"
D2 = "bbbbbbbb-2222-4222-8222-222222222222"
IDE0, IDE1, SCSI3, VIRTIO0 = Device("ide", 0, 0), Device("ide", 1, 0), Device("scsi", 0, 3), Device("virtio", 0, 0)
BASE = ServerConfig(name="web", cpu=2000, mem=512)


def config(**changes: object) -> ServerConfig:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_validate_puts_drives_in_bus_order_and_nics_by_index() -> None:
    given = config(
        drives=(DriveSlot(VIRTIO0, D1), DriveSlot(IDE1, D2, "cdrom")),
        nics=(Nic(1, "virtio", "02:00:00:00:00:02"), Nic(0, "e1000", "02:00:00:00:00:01")),
    )
    valid = validate(given)
    assert [s.device for s in valid.drives] == [IDE1, VIRTIO0]
    assert [n.index for n in valid.nics] == [0, 1]


def test_settle_derives_the_macs_not_given() -> None:
    settled = settle(config(nics=(Nic(0, "virtio"), Nic(1, "virtio", "02:00:00:00:00:09"))), SERVER)
    assert [n.mac for n in settled.nics] == [derived_mac(SERVER, 0), "02:00:00:00:00:09"]
    assert mac_of(SERVER, Nic(3, "virtio")) == derived_mac(SERVER, 3)


def test_derived_macs_are_fixed() -> None:
    """Golden: a derived MAC is part of every stored server's identity on its networks."""
    assert derived_mac("5e7e0000-0000-4000-8000-00000000000b", 0) == "02:e8:d9:7b:1f:5d"


def test_vcpu_count() -> None:
    assert vcpu_count(config(cpu=2001), 2000) == 2
    assert vcpu_count(config(cpu=256000), 1000) == 128
    assert vcpu_count(config(smp=4), 2000) == 4


def test_referenced_drives() -> None:
    assert referenced_drives(config(drives=(DriveSlot(IDE0, D1),), avoid_drives=(D1, D2))) == [D1, D2]


# --- refusals, each naming its parts in typed terms ----------------------------------------------


def test_a_drive_on_two_devices() -> None:
    with pytest.raises(DriveTwice) as caught:
        check_drives([DriveSlot(SCSI3, D1), DriveSlot(IDE0, D1)])
    assert (caught.value.device, caught.value.drive, caught.value.first) == (IDE0, D1, SCSI3)


def test_media() -> None:
    with pytest.raises(BadMedia):
        check_drives([DriveSlot(IDE0, D1, "floppy")])
    with pytest.raises(CdromOnVirtio) as caught:
        check_drives([DriveSlot(VIRTIO0, D1, "cdrom")])
    assert caught.value.device == VIRTIO0
    check_drives([DriveSlot(SCSI3, D1, "cdrom"), DriveSlot(IDE0, D2, "cdrom")])


def test_boot_names_configured_devices_once() -> None:
    drives, nics = [DriveSlot(IDE0, D1)], [Nic(0, "virtio")]
    check_boot([0, IDE0], drives, nics)
    cases: list[tuple[list[Boot], type[Exception], Boot]] = [
        ([IDE1], BootNotConfigured, IDE1),
        ([1], BootNotConfigured, 1),
        ([IDE0, 0, IDE0], BootTwice, IDE0),
    ]
    for boot, refusal, entry in cases:
        with pytest.raises(refusal) as caught:
            check_boot(boot, drives, nics)
        assert caught.value.entry == entry  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "changes, refusal",
    [
        ({"nics": (Nic(0, "virtio", "02:00:00:00:00:01"), Nic(1, "e1000", "02:00:00:00:00:01"))}, MacShared),
        ({"nics": (Nic(0, "ne2k_pci", "02:00:00:00:00:01"),)}, BadNicModel),
        ({"nics": (Nic(8, "virtio", "02:00:00:00:00:01"),)}, BadNic),
        ({"nics": (Nic(0, "virtio", "02:00:00:00:00:01"), Nic(0, "virtio", "02:00:00:00:00:02"))}, BadNic),
        ({"boot": (IDE0,)}, BootNotConfigured),
        ({"cpu": 99}, UsageError),
        ({"cpu": 256001}, UsageError),
        ({"mem": 15}, UsageError),
        ({"smp": 129}, UsageError),
        ({"vnc_password": "123456789"}, UsageError),
        ({"vnc_password": "pässwd"}, UsageError),
    ],
)
def test_validate_refuses(changes: dict[str, object], refusal: type[Exception]) -> None:
    with pytest.raises(refusal):
        validate(config(**changes))
