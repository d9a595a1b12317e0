"""Encrypted drives over HTTP, on the operator's default (aes-xts-plain): the key is never shown,
no plaintext reaches the pool, imaging to and from plain drives, and no start without the key."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import sqlite3
import subprocess

import pytest

from elastic_api.app import SERVICES
from elastic_api.model import keys
from tests.api.test_drive_bytes import download, mixed, upload
from tests.api.test_imaging import settled
from tests.support import BIN, Server, create_user, request, write_config

MiB = 1 << 20
MARKER = b"ELASTIC-API-PLAINTEXT-MARKER-3141592653"


@pytest.fixture
def config(config):
    """The shared test config with the real default: new drives are encrypted."""
    return dataclasses.replace(config, default_cipher="aes-xts-plain")


def passphrase_of(config, drive: str) -> bytes:
    """What only someone holding both the database and the master key file can compute."""
    with sqlite3.connect(config.db_path) as db:
        wrapped = db.execute("SELECT wrapped_key FROM drives WHERE id = ?", (drive,)).fetchone()[0]
    master = keys.parse_master_key(config.master_key_path.read_bytes())
    assert master is not None and wrapped is not None
    return keys.unwrap_passphrase(master, drive, wrapped)


@pytest.mark.parametrize("fmt", [None, "qcow2"])
async def test_a_marker_written_through_the_api_never_reaches_the_pool(alice, client, config, fmt):
    size = 5 * MiB + 4096
    data = bytearray(mixed(size, seed=5))
    for offset in range(0, size - len(MARKER), MiB + 17):
        data[offset : offset + len(MARKER)] = MARKER
    created = await alice.create_drive(str(size), **({"format": fmt} if fmt else {}))
    drive = created["drive"]
    # Encrypted drives are qcow2 with LUKS inside, and say so, whatever the default format is.
    assert created["encryption:cipher"] == "aes-xts-plain" and created["format"] == "qcow2"
    await upload(alice, drive, bytes(data), 1 * MiB)  # gzipped chunks, as the tools send them
    assert (await alice.call(f"/drives/{drive}/write/{3 * MiB}", MARKER)).status == 204  # and a plain body
    data[3 * MiB : 3 * MiB + len(MARKER)] = MARKER
    assert await download(alice, drive, size) == data
    checksum = (await alice.get(f"/drives/{drive}/checksum", as_json=True)).json
    assert checksum["sha256"] == hashlib.sha256(data).hexdigest()
    await client.app[SERVICES].drives.storage.close()  # exports flushed and gone: the file is all there is
    assert {p.name for p in config.pool_dir.iterdir()} == {f"{drive}.qcow2"}
    content = (config.pool_dir / f"{drive}.qcow2").read_bytes()
    assert MARKER not in content and b"elastic text region" not in content


async def test_new_and_grown_encrypted_drives_read_as_zeros(alice):
    drive = (await alice.create_drive("2M"))["drive"]
    assert (await alice.get(f"/drives/{drive}/read/0/2M")).body == bytes(2 * MiB)
    assert (await alice.call(f"/drives/{drive}/write/1M", b"\x01" * 4096)).status == 204
    assert (await alice.call(f"/drives/{drive}/set", b"size 3M\n")).status == 200
    body = (await alice.get(f"/drives/{drive}/read/0/3M")).body
    assert body == bytes(MiB) + b"\x01" * 4096 + bytes(2 * MiB - 4096)


async def test_keys_are_never_shown_and_only_wrapped_in_the_database(alice, config, caplog):
    caplog.set_level(logging.DEBUG)
    drive = (await alice.create_drive("1M"))["drive"]
    assert (await alice.call(f"/drives/{drive}/write/0", MARKER)).status == 204
    assert config.master_key_path.stat().st_mode & 0o777 == 0o600
    secret = passphrase_of(config, drive)
    replies = [
        await alice.get(f"/drives/{drive}/info"),
        await alice.get(f"/drives/{drive}/info", as_json=True),
        await alice.get("/drives/info", as_json=True),
        await alice.call("/drives/create", b"name b\nsize 1k\n"),
    ]
    for reply in replies:
        assert reply.status == 200 and secret not in reply.body and b"key" not in reply.body.lower()
    assert secret not in config.db_path.read_bytes() and secret.decode() not in caplog.text
    raw_key = base64.b64decode(secret)
    assert raw_key not in config.db_path.read_bytes()


@pytest.mark.parametrize(
    "body", ["encryption:cipher none\n", "encryption:cipher aes-xts-plain\n", "encryption:cipher rot13\n"]
)
async def test_the_cipher_cannot_be_set(alice, body):
    drive = (await alice.create_drive("1M"))["drive"]
    reply = await alice.call(f"/drives/{drive}/set", body)
    assert reply.status == 400 and reply.error == "usage" and "encryption:cipher" in reply.text
    assert (await alice.get(f"/drives/{drive}/info")).props()["encryption:cipher"] == "aes-xts-plain"


@pytest.mark.parametrize("cipher", ["aes-xts-plain64", "AES-XTS-PLAIN", "aes-cbc-essiv:sha256", "null"])
async def test_an_unknown_cipher_is_400_and_creates_nothing(alice, config, cipher):
    reply = await alice.call("/drives/create", f"name x\nsize 1M\nencryption:cipher {cipher}\n")
    assert reply.status == 400 and reply.error == "usage" and "encryption:cipher" in reply.text
    assert (await alice.get("/drives/list")).text == "" and not any(config.pool_dir.iterdir())


async def test_a_large_encrypted_drive_is_thin_and_reads_zeros_at_its_end(alice, config):
    # Libcloud's "small" size: 160 GB. A pool with far less room holds it (it used to be written
    # whole, encrypted zeros and all: 507 full, or minutes where it fit).
    created = await alice.create_drive("160G")
    drive = created["drive"]
    assert created["format"] == "qcow2" and created["encryption:cipher"] == "aes-xts-plain"
    assert (config.pool_dir / f"{drive}.qcow2").stat().st_blocks * 512 < 8 * MiB
    end = 160 * 1024 * MiB
    assert (await alice.get(f"/drives/{drive}/read/{end - MiB}/1M")).body == bytes(MiB)
    assert (await alice.call(f"/drives/{drive}/write/{end - 4096}", b"\x07" * 4096)).status == 204
    assert (await alice.get(f"/drives/{drive}/read/{end - 8192}/8192")).body == bytes(4096) + b"\x07" * 4096


async def test_an_encrypted_raw_drive_is_refused_and_nothing_is_created(alice, config):
    reply = await alice.call("/drives/create", b"name x\nsize 1M\nformat raw\n")
    assert reply.status == 400 and reply.error == "usage" and "qcow2" in reply.text
    assert (await alice.get("/drives/list")).text == ""
    assert not list(config.pool_dir.iterdir())
    # With the cipher off, raw it is.
    created = await alice.create_drive("1M", format="raw", **{"encryption:cipher": "none"})
    assert created["format"] == "raw"


async def test_a_drive_encrypted_as_raw_luks_by_an_older_version_still_works(alice, client, config):
    # Before encrypted drives became qcow2, they were raw LUKS files (DRIVE.luks): make one the
    # way that version did, under the drive's own key, and use it through the API.
    drive = (await alice.create_drive("3M"))["drive"]
    services = client.app[SERVICES]
    record = await services.drives.get(alice.user, drive)
    volume = services.drives.volume(record)
    await services.drives.storage.destroy(volume)
    legacy = dataclasses.replace(volume, format="raw")
    await services.drives.storage.create(legacy)
    assert (config.pool_dir / f"{drive}.luks").exists()
    with sqlite3.connect(config.db_path) as db:
        db.execute("UPDATE drives SET format = 'raw' WHERE id = ?", (drive,))
    info = (await alice.get(f"/drives/{drive}/info")).props()
    assert info["format"] == "raw" and info["encryption:cipher"] == "aes-xts-plain"
    assert (await alice.get(f"/drives/{drive}/read/0/3M")).body == bytes(3 * MiB)
    assert (await alice.call(f"/drives/{drive}/write/1M", MARKER)).status == 204
    assert (await alice.get(f"/drives/{drive}/read/1M/{len(MARKER)}")).body == MARKER
    assert (await alice.call(f"/drives/{drive}/set", b"size 4M\n")).status == 200
    assert (await alice.get(f"/drives/{drive}/read/3M/1M")).body == bytes(MiB)
    await services.drives.storage.close()
    assert MARKER not in (config.pool_dir / f"{drive}.luks").read_bytes()


async def test_a_plain_drive_on_request_is_a_plain_file(alice, config):
    created = await alice.create_drive("1M", **{"encryption:cipher": "none"})
    assert created["encryption:cipher"] == "none"
    assert (await alice.call(f"/drives/{created['drive']}/write/0", MARKER)).status == 204
    assert MARKER in (config.pool_dir / f"{created['drive']}.raw").read_bytes()


async def test_imaging_from_encrypted_to_plain_and_back(alice, config):
    size = 3 * MiB + 512
    data = mixed(size, seed=11)
    source = (await alice.create_drive(str(size), format="qcow2"))["drive"]  # encrypted qcow2
    await upload(alice, source, data, 1 * MiB)
    plain = (await alice.create_drive(str(size + MiB), **{"encryption:cipher": "none"}))["drive"]
    back = (await alice.create_drive(str(size + MiB)))["drive"]  # encrypted, the default
    assert (await alice.call(f"/drives/{back}/write/0", b"\xff" * (size + MiB))).status == 204  # old bytes

    assert (await alice.call(f"/drives/{plain}/image/{source}")).status == 204
    assert "imaging:error" not in await settled(alice, plain)
    assert await download(alice, plain, size + MiB) == data + bytes(MiB)
    assert data[:MiB] in (config.pool_dir / f"{plain}.raw").read_bytes()  # plain means plain

    assert (await alice.call(f"/drives/{back}/image/{plain}")).status == 204
    assert "imaging:error" not in await settled(alice, back)
    assert await download(alice, back, size + MiB) == data + bytes(MiB)
    gzipped = (await alice.create_drive(str(size + MiB), format="qcow2"))["drive"]
    assert (await alice.call(f"/drives/{gzipped}/image/{back}/gzip")).status == 204
    assert "imaging:error" not in await settled(alice, gzipped)
    assert (await alice.call(f"/drives/{plain}/image/{gzipped}/gunzip")).status == 204
    assert "imaging:error" not in await settled(alice, plain)
    assert await download(alice, plain, size + MiB) == data + bytes(MiB)


# --- the real program: no start without the master key ----------------------------------------


def serve_fails(config) -> str:
    """`elastic-api serve` must exit 2 at once with one clear line, never serve."""
    result = subprocess.run(
        [str(BIN), "--config", str(config), "serve"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_missing_or_wrong_master_key_stops_the_server(tmp_path):
    config = write_config(tmp_path, default_cipher="aes-xts-plain")
    user, secret = create_user(config)
    server = Server(config).start()
    try:
        status, _, body = request(server.url + "/drives/create", user, secret, b"name secret\nsize 1M\n")
        assert status == 200 and b"encryption:cipher aes-xts-plain" in body
        drive = body.split(b"\n")[0].split()[1].decode()
        assert request(server.url + f"/drives/{drive}/write/0", user, secret, MARKER)[0] == 204
    finally:
        assert server.stop() == 0
    key = tmp_path / "var" / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    kept = key.read_bytes()

    key.unlink()
    line = serve_fails(config)
    assert line.startswith("elastic-api: master key file") and "missing" in line and str(key) in line
    assert not key.exists()  # never replaced by a new key while drives need the old one

    key.write_bytes(keys.format_master_key(keys.new_master_key()))
    key.chmod(0o600)
    assert "does not open" in serve_fails(config)

    key.write_bytes(kept)
    key.chmod(0o640)
    assert "owner only" in serve_fails(config)

    key.chmod(0o600)
    server.start()
    try:
        status, _, body = request(server.url + f"/drives/{drive}/read/0/{len(MARKER)}", user, secret, method="GET")
        assert status == 200 and body == MARKER
    finally:
        server.stop()


def test_a_configured_master_key_file_is_never_created(tmp_path):
    named = tmp_path / "keys" / "master.key"
    config = write_config(tmp_path, master_key_file=str(named))
    line = serve_fails(config)
    assert line == f"elastic-api: master key file {named} (master_key_file) is missing"
    assert not named.exists()
    os.makedirs(named.parent)
    named.write_bytes(keys.format_master_key(keys.new_master_key()))
    named.chmod(0o600)
    Server(config).start().stop()
