"""qcow2 images with LUKS inside, built by our code: read back by us, and by QEMU's own tools."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from elastic_api.storage.qcow2_luks import (
    LUKS_ITERATIONS,
    af_merge,
    af_split,
    luks_header,
    luks_master_key,
    qcow2_luks_image,
)

TiB = 1 << 40
PASSPHRASE = os.urandom(32).hex().encode()  # qemu reads LUKS passphrases as UTF-8 text


def write(path: Path, size: int, passphrase: bytes = PASSPHRASE) -> Path:
    image = qcow2_luks_image(size, passphrase)
    with open(path, "wb") as f:
        f.truncate(image.length)
        for offset, data in image.pieces:
            f.seek(offset)
            f.write(data)
    return path


def qemu(
    tool: list[str], path: Path, *commands: str, passphrase: bytes = PASSPHRASE
) -> subprocess.CompletedProcess[str]:
    """A qemu tool (with its subcommand) on the image, its passphrase as secret object `s`."""
    secret = path.with_name("secret")
    secret.write_bytes(passphrase)
    opts = f"driver=qcow2,encrypt.key-secret=s,file.filename={path}"
    return subprocess.run(
        [*tool, "--object", f"secret,id=s,file={secret}", "--image-opts", opts, *commands],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_af_split_and_merge_are_inverse_and_every_stripe_matters():
    key = os.urandom(64)
    material = af_split(key, 4000, os.urandom)
    assert len(material) == 64 * 4000 and af_merge(material, 64, 4000) == key
    damaged = bytearray(material)
    damaged[1000] ^= 1
    assert af_merge(bytes(damaged), 64, 4000) != key


def test_the_luks_header_opens_with_its_passphrase_only():
    pieces, length = luks_header(PASSPHRASE)
    area = bytearray(length)
    for offset, data in pieces:
        area[offset : offset + len(data)] = data
    master = luks_master_key(bytes(area), PASSPHRASE)
    assert master is not None and len(master) == 64
    assert luks_master_key(bytes(area), PASSPHRASE + b"x") is None
    # Two headers never share a master key, even under the same passphrase.
    other, _ = luks_header(PASSPHRASE)
    area2 = bytearray(length)
    for offset, data in other:
        area2[offset : offset + len(data)] = data
    assert luks_master_key(bytes(area2), PASSPHRASE) not in (None, master)


def test_sizes_must_be_whole_sectors():
    with pytest.raises(ValueError):
        qcow2_luks_image(1000, PASSPHRASE)
    with pytest.raises(ValueError):
        qcow2_luks_image(-512, PASSPHRASE)


def test_qemu_img_finds_a_whole_encrypted_thin_image(tmp_path):
    path = write(tmp_path / "d.qcow2", 16 * TiB)
    assert path.stat().st_blocks * 512 < 4 << 20  # a 16 TiB drive takes less than 4 MiB
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert info["virtual-size"] == 16 * TiB and info["encrypted"] is True
    crypt = info["format-specific"]["data"]["encrypt"]
    assert crypt["format"] == "luks" and crypt["cipher-alg"] == "aes-256" and crypt["cipher-mode"] == "xts"
    assert crypt["master-key-iters"] == LUKS_ITERATIONS and crypt["slots"][0]["active"] is True
    assert [slot["active"] for slot in crypt["slots"][1:]] == [False] * 7
    check = qemu(["qemu-img", "check"], path)
    assert check.returncode == 0 and "No errors were found" in check.stdout, check.stdout + check.stderr


def test_qemu_reads_zeros_then_what_was_written_and_refuses_a_wrong_passphrase(tmp_path):
    path = write(tmp_path / "d.qcow2", 3 << 30)
    io = qemu(
        ["qemu-io"],
        path,
        "-c",
        "read -P 0 0 1M",
        "-c",
        "read -P 0 3071M 1M",
        "-c",
        "write -P 0xab 1M 64k",
        "-c",
        "read -P 0xab 1M 64k",
    )
    assert io.returncode == 0 and "Pattern verification failed" not in io.stdout, io.stdout + io.stderr
    again = qemu(["qemu-io"], path, "-c", "read -P 0xab 1M 64k", "-c", "read -P 0 0 1M")
    assert "Pattern verification failed" not in again.stdout and again.returncode == 0, again.stdout
    # The bytes on disk are not the plaintext.
    assert b"\xab" * 4096 not in path.read_bytes()
    wrong = qemu(["qemu-io"], path, "-c", "read 0 512", passphrase=b"not the passphrase")
    assert wrong.returncode != 0 and "password" in (wrong.stdout + wrong.stderr).lower()
