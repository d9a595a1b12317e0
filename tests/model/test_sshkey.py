"""OpenSSH public keys: the type, the base64 blob and the type it names must agree."""

from __future__ import annotations

import pytest

from elastic_api.errors import Invalid
from elastic_api.model.sshkey import KEY_TYPES, parse_label, parse_public_key
from tests.api.ecs.conftest import ssh_key


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
def test_every_known_type(kind):
    line = ssh_key(kind, "a comment with spaces")
    assert parse_public_key(line) == line
    assert parse_public_key("  " + line + "\n") == line


def test_a_key_without_comment():
    line = ssh_key(comment="")
    assert parse_public_key(line) == line


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssh-rsa",
        "ssh-dss AAAAB3NzaC1kc3M=",
        ssh_key().replace("ssh-ed25519", "ssh-rsa", 1),
        ssh_key().replace(" ", " !", 1),
        "ssh-ed25519 AAAA====",
        ssh_key(comment="tab\there"),
        "x" * 9000,
    ],
)
def test_bad_keys(text):
    with pytest.raises(Invalid):
        parse_public_key(text)


def test_labels():
    assert parse_label(" laptop ") == "laptop"
    for bad in ("", " ", "a\nb", "x" * 129, "\x85"):
        with pytest.raises(Invalid):
            parse_label(bad)
