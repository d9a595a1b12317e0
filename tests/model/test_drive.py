"""Drive keys: what create and set accept, and the info rendered back."""
from __future__ import annotations

import dataclasses

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.drive import apply_changes, new_drive, parse_changes, to_info
from elastic_api.model.ids import ALL_USERS

OWNER = "11111111-2222-3333-4444-555555555555"
OTHER = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MAX = 1 << 40


def make(props, **kw):
    changes = parse_changes(props, creating=True, max_size=MAX)
    return new_drive("99999999-8888-7777-6666-555555555555", OWNER, changes, default_format="raw",
                     created=1, **kw)


def test_create_with_every_key():
    drive = make({"name": "boot disk", "size": "10G", "claim:type": "shared", "readers": OTHER.upper(),
                  "tags": "a b a", "user:ref": "x y", "encryption:cipher": "none", "tier": "ssd",
                  "format": "qcow2", "avoid": OTHER})
    info = to_info(drive)
    assert info["size"] == 10 << 30 and info["readers"] == [OTHER] and info["tags"] == ["a", "b"]
    assert info["format"] == "qcow2" and info["claim:type"] == "shared" and info["user:ref"] == "x y"
    assert info["encryption:cipher"] == "none" and info["user"] == OWNER and info["claimed"] == []
    assert "imaging" not in info


@pytest.mark.parametrize("props, word", [
    ({"size": "1G"}, "name is required"),
    ({"name": "x"}, "size is required"),
    ({"name": "x", "size": "0"}, "size must be"),
    ({"name": "x", "size": "2T"}, "size must be"),
    ({"name": "", "size": "1"}, "name must be"),
    ({"name": "x", "size": "1", "colour": "red"}, "unknown key: colour"),
    ({"name": "x", "size": "1", "claim:type": "mine"}, "claim:type"),
    ({"name": "x", "size": "1", "readers": "bob"}, "readers"),
    ({"name": "x", "size": "1", "format": "vmdk"}, "format"),
    ({"name": "x", "size": "1", "encryption:cipher": "rot13"}, "encryption:cipher"),
    ({"name": "x", "size": "1", "encryption:cipher": "AES-XTS-PLAIN"}, "encryption:cipher"),
    ({"name": "x", "size": "1", "encryption:cipher": ""}, "encryption:cipher"),
    ({"name": "x", "size": "1", "drive": OWNER}, "drive is read-only"),
    ({"name": "x", "size": "1", "claimed": ""}, "read-only"),
    ({"name": "x", "size": "1", "avoid": ALL_USERS}, "avoid"),
])
def test_create_rejects(props, word):
    with pytest.raises(UsageError, match=word):
        parse_changes(props, creating=True, max_size=MAX)


def test_set_changes_only_what_is_given_and_removes_empty_user_keys():
    drive = make({"name": "a", "size": "1M", "user:keep": "1", "user:drop": "2", "tags": "t"})
    changed = apply_changes(drive, parse_changes({"name": "b", "user:drop": "", "readers": ALL_USERS},
                                                 creating=False, max_size=MAX))
    assert changed.name == "b" and changed.tags == ("t",) and changed.readers == (ALL_USERS,)
    assert changed.user_keys == {"user:keep": "1"} and changed.size == drive.size


@pytest.mark.parametrize("key", ["format", "encryption:cipher", "tier", "avoid"])
def test_set_refuses_fixed_keys(key):
    with pytest.raises(UsageError, match="cannot be changed"):
        parse_changes({key: "x"}, creating=False, max_size=MAX)


def test_readers_share():
    drive = make({"name": "a", "size": "1", "readers": OTHER})
    assert drive.readable_by(OTHER) and drive.readable_by(OWNER)
    assert not drive.readable_by("00000000-0000-0000-0000-000000000000")
    assert make({"name": "a", "size": "1", "readers": ALL_USERS}).readable_by("x")


def test_cipher_defaults_to_the_operators_choice_and_is_kept_when_given():
    changes = parse_changes({"name": "x", "size": "1"}, creating=True, max_size=MAX)
    assert new_drive(OWNER, OWNER, changes, default_format="raw", created=1,
                     default_cipher="aes-xts-plain").encryption == "aes-xts-plain"
    plain = parse_changes({"name": "x", "size": "1", "encryption:cipher": "none"}, creating=True, max_size=MAX)
    drive = new_drive(OWNER, OWNER, plain, default_format="raw", created=1, default_cipher="aes-xts-plain")
    assert drive.encryption == "none" and not drive.encrypted and drive.format == "raw"


@pytest.mark.parametrize("default_format", ["raw", "qcow2"])
def test_an_encrypted_drive_is_qcow2_whatever_the_default_format(default_format):
    changes = parse_changes({"name": "x", "size": "1"}, creating=True, max_size=MAX)
    drive = new_drive(OWNER, OWNER, changes, default_format=default_format, created=1, default_cipher="aes-xts-plain")
    assert drive.encrypted and drive.format == "qcow2"
    raw = parse_changes({"name": "x", "size": "1", "format": "raw"}, creating=True, max_size=MAX)
    with pytest.raises(UsageError, match="qcow2"):
        new_drive(OWNER, OWNER, raw, default_format="raw", created=1, default_cipher="aes-xts-plain")
    assert new_drive(OWNER, OWNER, raw, default_format="raw", created=1).format == "raw"  # plain: as asked


def test_a_wrapped_key_is_never_shown():
    changes = parse_changes({"name": "x", "size": "1"}, creating=True, max_size=MAX)
    drive = dataclasses.replace(new_drive(OWNER, OWNER, changes, default_format="raw", created=1,
                                          default_cipher="aes-xts-plain"), wrapped_key=b"\x01SECRETBYTES")
    assert drive.encrypted and "SECRETBYTES" not in repr(drive)
    assert "SECRETBYTES" not in repr(to_info(drive)) and to_info(drive)["encryption:cipher"] == "aes-xts-plain"
