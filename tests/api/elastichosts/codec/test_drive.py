"""ElasticHosts drive keys: what create and set accept, and the info rendered back (golden)."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_api.api.elastichosts.codec.drive import checksum_info, parse_changes, parse_spec, to_info
from elastic_api.api.elastichosts.properties import parse_text, render_properties
from elastic_api.errors import UsageError
from elastic_api.model.drive import Checksum, DriveChanges, DriveSpec, apply_changes, new_drive
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.job import QUEUED, RUNNING, ImageParams, Job

OWNER = "11111111-2222-3333-4444-555555555555"
OTHER = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
DRIVE = "99999999-8888-7777-6666-555555555555"
MAX = 1 << 40


def make(props, **kw):
    return new_drive(DRIVE, OWNER, parse_spec(props, max_size=MAX), default_format="raw", created=1, **kw)


def test_create_with_every_key():
    drive = make(
        {
            "name": "boot disk",
            "size": "10G",
            "claim:type": "shared",
            "readers": OTHER.upper(),
            "tags": "a b a",
            "user:ref": "x y",
            "encryption:cipher": "none",
            "tier": "ssd",
            "format": "qcow2",
            "avoid": OTHER,
        }
    )
    info = to_info(drive)
    assert info["size"] == 10 << 30 and info["readers"] == [OTHER] and info["tags"] == ["a", "b"]
    assert info["format"] == "qcow2" and info["claim:type"] == "shared" and info["user:ref"] == "x y"
    assert info["encryption:cipher"] == "none" and info["user"] == OWNER and info["claimed"] == []
    assert "imaging" not in info


def test_parse_gives_typed_values():
    assert parse_spec(
        {
            "name": " a ",
            "size": "1k",
            "claim:type": "shared",
            "readers": f"{OTHER} {OTHER}",
            "tags": "t",
            "user:x": "1",
            "user:y": "",
            "encryption:cipher": "aes-xts-plain",
            "tier": "ssd",
            "format": "qcow2",
            "avoid": OTHER.upper(),
        },
        max_size=MAX,
    ) == DriveSpec(
        name="a",
        size=1024,
        format="qcow2",
        claim_type="shared",
        readers=(OTHER,),
        tags=("t",),
        user_keys={"user:x": "1", "user:y": ""},
        encryption="aes-xts-plain",
        tier="ssd",
        avoid=(OTHER,),
    )
    # What the client did not give is the default (None: the operator's).
    assert parse_spec({"name": "a", "size": "1"}, max_size=MAX) == DriveSpec(name="a", size=1)
    assert parse_changes({"size": "2", "user:x": ""}, max_size=MAX) == DriveChanges(size=2, user_keys={"user:x": ""})
    assert parse_changes({}, max_size=MAX) == DriveChanges()


GOLDEN = """\
drive 99999999-8888-7777-6666-555555555555
name boot disk
size 1048576
user 11111111-2222-3333-4444-555555555555
status active
claimed
claim:type shared
readers aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
tags a b
encryption:cipher none
format raw
tier ssd
read:bytes 0
read:requests 0
write:bytes 0
write:requests 0
avoid aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
user:a 1
user:note two\\nlines
""".replace("claimed\n", "claimed \n")  # an empty list: key and space (spelt so: editors strip trailing spaces)


def test_round_trip_golden():
    """Text in → typed → info rendered: exactly the text a client has always read back."""
    body = (
        b"name boot disk\nsize 1M\nclaim:type shared\nreaders "
        + OTHER.encode()
        + b"\ntags a b\nuser:note two\\nlines\nuser:a 1\ntier ssd\navoid "
        + OTHER.encode()
        + b"\n"
    )
    drive = make(parse_text(body))
    assert render_properties(to_info(drive)) == GOLDEN
    # And what the client read back parses again to the same drive, less the read-only keys.
    again = {
        k: v
        for k, v in parse_text(GOLDEN.encode()).items()
        if k in ("name", "size", "claim:type", "readers", "tags", "tier", "avoid") or k.startswith("user:")
    }
    assert make(again) == drive


def test_info_while_imaging_and_after_a_failure():
    job = Job(7, "image", OWNER, DRIVE, ImageParams("x", ""), status=RUNNING, progress=42)
    drive = dataclasses.replace(make({"name": "a", "size": "1"}), image_job=job, imaging_error="no space")
    info = to_info(drive)
    # The job holds the drive as a server would: clients have always seen `image:SOURCE` claimed.
    assert info["imaging"] == "42%" and info["imaging:error"] == "no space" and info["claimed"] == ["image:x"]
    assert list(info)[-2:] == ["imaging", "imaging:error"]


def test_info_of_a_queued_job_claims_nothing_yet():
    job = Job(7, "image", OWNER, DRIVE, ImageParams("x", ""), status=QUEUED)
    info = to_info(dataclasses.replace(make({"name": "a", "size": "1"}), image_job=job))
    assert info["imaging"] == "queued" and info["claimed"] == [] and "imaging:error" not in info


def test_checksum_info():
    assert render_properties(checksum_info(Checksum(DRIVE, 0, 512, "ab" * 32))) == (
        f"drive {DRIVE}\noffset 0\nsize 512\nsha256 {'ab' * 32}\n"
    )


@pytest.mark.parametrize(
    "props, word",
    [
        ({"size": "1G"}, "^name is required to create a drive$"),
        ({"name": "x"}, "^size is required to create a drive$"),
        ({"name": "x", "size": "0"}, "^size must be between 1 byte and 1099511627776 bytes$"),
        ({"name": "x", "size": "2T"}, "size must be"),
        ({"name": "x", "size": "lots"}, "^size must be a number of bytes"),
        ({"name": "", "size": "1"}, "name must be"),
        ({"name": "x", "size": "1", "colour": "red"}, "^unknown key: colour$"),
        ({"name": "x", "size": "1", "user:": "red"}, "^unknown key: user:$"),
        ({"name": "x", "size": "1", "claim:type": "mine"}, "^claim:type must be one of exclusive, shared$"),
        ({"name": "x", "size": "1", "readers": "bob"}, "^readers must be a list of UUIDs: 'bob'$"),
        (
            {"name": "x", "size": "1", "readers": " ".join(f"{n:08x}-0000-4000-8000-000000000000" for n in range(65))},
            "^readers holds more than 64 entries$",
        ),
        ({"name": "x", "size": "1", "format": "vmdk"}, "^format must be one of raw, qcow2$"),
        ({"name": "x", "size": "1", "encryption:cipher": "rot13"}, "encryption:cipher"),
        ({"name": "x", "size": "1", "encryption:cipher": "AES-XTS-PLAIN"}, "encryption:cipher"),
        ({"name": "x", "size": "1", "encryption:cipher": ""}, "encryption:cipher"),
        ({"name": "x", "size": "1", "tier": "tape"}, "^tier must be one of disk, ssd$"),
        ({"name": "x", "size": "1", "drive": OWNER}, "^drive is read-only$"),
        ({"name": "x", "size": "1", "claimed": ""}, "read-only"),
        ({"name": "x", "size": "1", "read:bytes": "0"}, "^read:bytes is read-only$"),
        ({"name": "x", "size": "1", "avoid": ALL_USERS}, "^avoid must name real objects$"),
        ({"name": "x", "size": "1", "user:x": "a\rb"}, "^user:x must not contain control characters$"),
        # The first bad key is the one named.
        ({"colour": "red", "size": "0"}, "^unknown key: colour$"),
        ({"size": "0", "colour": "red"}, "^size must be"),
    ],
)
def test_create_rejects(props, word):
    with pytest.raises(UsageError, match=word):
        parse_spec(props, max_size=MAX)


def test_set_changes_only_what_is_given_and_removes_empty_user_keys():
    drive = make({"name": "a", "size": "1M", "user:keep": "1", "user:drop": "2", "tags": "t"})
    changed = apply_changes(drive, parse_changes({"name": "b", "user:drop": "", "readers": ALL_USERS}, max_size=MAX))
    assert changed.name == "b" and changed.tags == ("t",) and changed.readers == (ALL_USERS,)
    assert changed.user_keys == {"user:keep": "1"} and changed.size == drive.size


@pytest.mark.parametrize("key", ["format", "encryption:cipher", "tier", "avoid"])
def test_set_refuses_fixed_keys(key):
    with pytest.raises(UsageError, match=f"^{key} cannot be changed after a drive is created$"):
        parse_changes({key: "x"}, max_size=MAX)


@pytest.mark.parametrize(
    "props, word",
    [
        ({"drive": OWNER}, "^drive is read-only$"),
        ({"colour": "red"}, "^unknown key: colour$"),
        ({"size": "0"}, "^size must be between"),
        ({"claim:type": "x"}, "^claim:type must be one of"),
    ],
)
def test_set_rejects(props, word):
    with pytest.raises(UsageError, match=word):
        parse_changes(props, max_size=MAX)


def test_a_wrapped_key_is_never_shown():
    drive = dataclasses.replace(
        make({"name": "x", "size": "1"}, default_cipher="aes-xts-plain"), wrapped_key=b"\x01SECRETBYTES"
    )
    assert drive.encrypted and "SECRETBYTES" not in repr(drive)
    assert "SECRETBYTES" not in repr(to_info(drive)) and to_info(drive)["encryption:cipher"] == "aes-xts-plain"
