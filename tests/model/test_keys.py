"""Drive keys: wrapped by the master key, bound to their drive, never readable without it."""

from __future__ import annotations

import base64

import pytest

from elastic_api.errors import FailedError
from elastic_api.model import keys

DRIVE = "1c9e4e5b-0a43-4a4f-9a7c-3e8f3b2d6c10"
OTHER = "2c9e4e5b-0a43-4a4f-9a7c-3e8f3b2d6c10"


def test_wrap_and_unwrap():
    master = keys.new_master_key()
    wrapped = keys.new_wrapped_key(master, DRIVE)
    passphrase = keys.unwrap_passphrase(master, DRIVE, wrapped)
    assert len(base64.b64decode(passphrase, validate=True)) == keys.DRIVE_KEY_BYTES
    assert keys.unwrap_passphrase(master, DRIVE, wrapped) == passphrase
    # Fresh randomness each time: another drive (or the same one again) gets another key.
    assert keys.unwrap_passphrase(master, DRIVE, keys.new_wrapped_key(master, DRIVE)) != passphrase
    # The plain key is not in what the database stores.
    assert base64.b64decode(passphrase) not in wrapped and passphrase not in wrapped


def test_a_key_opens_only_with_its_master_key_and_on_its_own_drive():
    master = keys.new_master_key()
    wrapped = keys.new_wrapped_key(master, DRIVE)
    with pytest.raises(FailedError, match="master key"):
        keys.unwrap_passphrase(keys.new_master_key(), DRIVE, wrapped)
    with pytest.raises(FailedError, match="master key"):
        keys.unwrap_passphrase(master, OTHER, wrapped)  # a row's key copied onto another drive
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(FailedError):
        keys.unwrap_passphrase(master, DRIVE, tampered)
    for broken in (b"", b"\x01", b"\x02" + wrapped[1:]):
        with pytest.raises(FailedError, match="no usable key"):
            keys.unwrap_passphrase(master, DRIVE, broken)


def test_master_key_file_format():
    master = keys.new_master_key()
    text = keys.format_master_key(master)
    assert keys.parse_master_key(text) == master and keys.parse_master_key(text.strip()) == master
    for bad in (b"", b"zz" * 32, text[:-3], text * 2, b"\xff" * 64):
        assert keys.parse_master_key(bad) is None
