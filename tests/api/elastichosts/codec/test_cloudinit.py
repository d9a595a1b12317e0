"""The ElasticHosts cloud-init extension keys: parsed into the seed's setup (create) or a change
of it (set), shown back in info, and read back the same through check_set."""

from __future__ import annotations

import base64

import pytest

from elastic_api.api.elastichosts.codec import server as codec
from elastic_api.errors import UsageError
from elastic_api.model.cloudinit import GuestSetup, sha512_crypt
from elastic_api.model.server_patch import apply_patch
from tests.api.ecs.conftest import ssh_key

SERVER = "5e7e0000-0000-4000-8000-00000000000a"
BASE = {"name": "web", "cpu": "1000", "mem": "256"}
KEY = ssh_key(comment="me@laptop")
HASH = sha512_crypt("pw", "saltsalt")
SCRIPT = "#!/bin/sh\necho 'ünï' > /root/x\n"
SCRIPT64 = base64.b64encode(SCRIPT.encode()).decode()


def test_no_key_no_seed() -> None:
    assert codec.parse_config(BASE).cloudinit is None
    assert codec.parse_config({**BASE, "cloudinit": "off"}).cloudinit is None
    assert "cloudinit" not in codec.to_info(codec.parse_config(BASE))


def test_every_part_parsed_and_shown_back() -> None:
    props = {**BASE, "cloudinit:ssh_key": KEY, "cloudinit:password_hash": HASH, "cloudinit:script": SCRIPT64}
    config = codec.parse_config(props)
    assert config.cloudinit == GuestSetup((KEY,), HASH, SCRIPT)
    info = codec.to_info(config)
    assert (info["cloudinit"], info["cloudinit:ssh_key"], info["cloudinit:script"]) == ("on", KEY, SCRIPT64)
    assert codec.parse_config(codec.to_props(config)) == config  # info reads back as the same config
    assert codec.parse_config({**BASE, "cloudinit": "on"}).cloudinit == GuestSetup()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("cloudinit", "maybe", "cloudinit must be on or off"),
        ("cloudinit:ssh_key", "ssh-rsa notbase64!", "cloudinit:ssh_key"),
        ("cloudinit:ssh_key", "just-a-word", "cloudinit:ssh_key"),
        ("cloudinit:password_hash", "clear-password", "cloudinit:password_hash"),
        ("cloudinit:password_hash", "$1$md5$abcdefghijklmnopqrstuv", "cloudinit:password_hash"),
        ("cloudinit:script", "not base64 !", "cloudinit:script"),
        ("cloudinit:script", base64.b64encode(b"\xff\xfe").decode(), "cloudinit:script"),
        ("cloudinit:script", base64.b64encode(b"a\0b").decode(), "cloudinit:script"),
        ("cloudinit:other", "x", "unknown key: cloudinit:other"),
    ],
)
def test_bad_values_name_their_key(key: str, value: str, words: str) -> None:
    with pytest.raises(UsageError) as refused:
        codec.parse_config({**BASE, key: value})
    assert words in refused.value.message
    with pytest.raises(UsageError):
        codec.parse_patch({key: value})


def test_set_changes_parts_and_off_removes_the_seed() -> None:
    config = codec.parse_config({**BASE, "cloudinit:ssh_key": KEY, "cloudinit:script": SCRIPT64}, SERVER)
    for props, expected in (
        ({"cloudinit:password_hash": HASH}, GuestSetup((KEY,), HASH, SCRIPT)),
        ({"cloudinit:script": ""}, GuestSetup((KEY,))),
        ({"cloudinit:ssh_key": ""}, GuestSetup(script=SCRIPT)),
        ({"cloudinit": "off"}, None),
        ({"cloudinit": ""}, None),
        ({"cloudinit": "off", "cloudinit:password_hash": HASH}, None),
        ({"cpu": "2000"}, GuestSetup((KEY,), script=SCRIPT)),
    ):
        changed = apply_patch(config, codec.parse_patch(props), SERVER)
        assert changed.cloudinit == expected, props
        assert codec.check_set(config, props) == changed, props  # the protocol's view agrees
    plain = codec.parse_config(BASE, SERVER)
    assert apply_patch(plain, codec.parse_patch({"cloudinit:password_hash": HASH}), SERVER).cloudinit == GuestSetup(
        password_hash=HASH
    )
