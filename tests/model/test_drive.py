"""Drives as typed values: a spec made into a drive, changes applied, and what the service checks
whichever dialect parsed them."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.drive import (
    Drive,
    DriveChanges,
    DriveSpec,
    EncryptedRawError,
    apply_changes,
    check_changes,
    check_spec,
    new_drive,
    stored_drive,
)
from elastic_api.model.ids import ALL_USERS

OWNER = "11111111-2222-3333-4444-555555555555"
OTHER = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MAX = 1 << 40


def make(spec, **kw):
    return new_drive("99999999-8888-7777-6666-555555555555", OWNER, spec, default_format="raw", created=1, **kw)


def test_defaults():
    drive = make(DriveSpec(name="a", size=1, user_keys={"k": "1", "gone": ""}))
    assert (drive.format, drive.claim_type, drive.encryption, drive.tier) == ("raw", "exclusive", "none", "disk")
    assert drive.user_keys == {"k": "1"} and drive.created == 1 and drive.owner == OWNER


def test_readers_share():
    drive = make(DriveSpec(name="a", size=1, readers=(OTHER,)))
    assert drive.readable_by(OTHER) and drive.readable_by(OWNER)
    assert not drive.readable_by("00000000-0000-0000-0000-000000000000")
    assert make(DriveSpec(name="a", size=1, readers=(ALL_USERS,))).readable_by("x")


def test_cipher_defaults_to_the_operators_choice_and_is_kept_when_given():
    assert make(DriveSpec(name="x", size=1), default_cipher="aes-xts-plain").encryption == "aes-xts-plain"
    drive = make(DriveSpec(name="x", size=1, encryption="none"), default_cipher="aes-xts-plain")
    assert drive.encryption == "none" and not drive.encrypted and drive.format == "raw"


@pytest.mark.parametrize("default_format", ["raw", "qcow2"])
def test_an_encrypted_drive_is_qcow2_whatever_the_default_format(default_format):
    drive = new_drive(
        OWNER,
        OWNER,
        DriveSpec(name="x", size=1),
        default_format=default_format,
        created=1,
        default_cipher="aes-xts-plain",
    )
    assert drive.encrypted and drive.format == "qcow2"
    raw = DriveSpec(name="x", size=1, format="raw")
    with pytest.raises(EncryptedRawError, match="qcow2"):
        make(raw, default_cipher="aes-xts-plain")
    assert make(raw).format == "raw"  # plain: as asked


def test_changes_apply_only_what_is_given():
    drive = make(DriveSpec(name="a", size=1, tags=("t",), user_keys={"keep": "1", "drop": "2"}))
    changed = apply_changes(drive, DriveChanges(name="b", size=2, user_keys={"drop": "", "new": "3"}))
    assert (changed.name, changed.size, changed.tags) == ("b", 2, ("t",))
    assert changed.user_keys == {"keep": "1", "new": "3"} and drive.user_keys == {"keep": "1", "drop": "2"}


@pytest.mark.parametrize(
    "spec, word",
    [
        (DriveSpec(name="a", size=0), "size must be between"),
        (DriveSpec(name="a", size=MAX + 1), "size must be between"),
        (DriveSpec(name="a", size=1, format="vmdk"), "format"),
        (DriveSpec(name="a", size=1, claim_type="mine"), "claim type"),
        (DriveSpec(name="a", size=1, encryption="rot13"), "encryption"),
        (DriveSpec(name="a", size=1, tier="tape"), "tier"),
        (DriveSpec(name="a", size=1, avoid=(ALL_USERS,)), "avoid must name real objects"),
        (DriveSpec(name="a", size=1, readers=tuple(str(n) for n in range(65))), "readers holds more than 64"),
    ],
)
def test_check_spec_refuses(spec, word):
    with pytest.raises(UsageError, match=word):
        check_spec(spec, MAX)


def test_check_spec_and_changes_accept():
    check_spec(DriveSpec(name="a", size=MAX, format="qcow2", claim_type="shared", encryption="aes-xts-plain"), MAX)
    check_changes(DriveChanges(), MAX)
    check_changes(DriveChanges(size=1, claim_type="shared"), MAX)
    with pytest.raises(UsageError, match="size"):
        check_changes(DriveChanges(size=-1), MAX)


def test_a_stored_drive_is_the_drive_the_constructor_makes():
    made = Drive(
        "d", "o", "n", 1 << 20, "qcow2", "shared", ("r",), ("t",), {"k": "v"}, "aes-xts-plain", "ssd", ("a",), 7,
        1, 2, 3, 4, None, "failed", ("s",), b"key",
    )  # fmt: skip
    values = {f.name: getattr(made, f.name) for f in dataclasses.fields(Drive)}
    stored = stored_drive(values)
    assert stored == made and repr(stored) == repr(made) and type(stored) is Drive
    assert dataclasses.replace(stored, name="m") == dataclasses.replace(made, name="m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.name = "m"  # type: ignore[misc]
    for wrong in ({k: v for k, v in values.items() if k != "tier"}, {**values, "colour": "red"}):
        with pytest.raises(TypeError):
            stored_drive(wrong)
