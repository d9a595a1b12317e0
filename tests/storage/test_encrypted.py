"""Encrypted volumes on real files through qemu's LUKS code: no plaintext in the pool, zeros
where nothing was written, round trips and conversions to and from plain volumes."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest

from elastic_api.errors import FailedError
from elastic_api.storage import Pool, Volume
from elastic_api.storage.exports import qemu_escape
from tests.storage.conftest import LANES, MiB, body, mixed, read_all, upload

MARKER = b"ELASTIC-PLAINTEXT-MARKER-7f3a9c"
FORMATS = ("raw", "qcow2")


def passphrase() -> bytes:
    return base64.b64encode(secrets.token_bytes(32))


async def encrypted(pool: Pool, fmt: str, size: int = 8 * MiB) -> Volume:
    volume = Volume(str(uuid.uuid4()), fmt, size, passphrase())
    await pool.create(volume)
    return volume


def qemu_decrypted(volume: Volume, path: Path, tmp_path: Path) -> bytes:
    """The guest bytes as qemu-img itself decrypts them, the passphrase through a pipe."""
    assert volume.secret is not None
    read, write = os.pipe()
    os.write(write, volume.secret)
    os.close(write)
    driver = "luks" if volume.format == "raw" else "qcow2,encrypt.format=luks"
    secret = "key-secret=s" if volume.format == "raw" else "encrypt.key-secret=s"
    out = tmp_path / f"decrypted-{uuid.uuid4()}.raw"
    try:
        subprocess.run(
            [
                "qemu-img",
                "convert",
                "-U",
                "--object",
                f"secret,id=s,format=raw,file=/proc/self/fd/{read}",
                "--image-opts",
                f"driver={driver},{secret},file.filename={qemu_escape(str(path))}",
                "-O",
                "raw",
                str(out),
            ],
            check=True,
            pass_fds=(read,),
            capture_output=True,
        )
    finally:
        os.close(read)
    try:
        return out.read_bytes()[: volume.size]
    finally:
        out.unlink()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_new_encrypted_volume_reads_as_zeros_and_is_luks(pool, fmt, tmp_path):
    volume = await encrypted(pool, fmt, 3 * MiB + 512)
    path = pool.path(volume)
    assert path.name == f"{volume.drive}.{'luks' if fmt == 'raw' else 'qcow2'}"
    assert path.stat().st_mode & 0o777 == 0o600
    assert await read_all(pool, volume) == bytes(volume.size)
    assert qemu_decrypted(volume, path, tmp_path) == bytes(volume.size)
    header = path.read_bytes()[:8]
    assert header.startswith(b"LUKS\xba\xbe") if fmt == "raw" else header.startswith(b"QFI\xfb")
    assert pool.plain_file(volume) is None  # never sent as it is
    assert await pool.volumes() == {volume.drive}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_round_trip_with_no_plaintext_in_the_pool(pool, fmt, tmp_path):
    size = 6 * MiB + 777
    data = bytearray(mixed(size, seed=8))
    for offset in (0, 1 * MiB + 3, 5 * MiB):
        data[offset : offset + len(MARKER)] = MARKER
    volume = await encrypted(pool, fmt, size)
    await upload(pool, volume, bytes(data), 1 * MiB)
    assert await read_all(pool, volume) == data
    await pool.close()  # the daemon has flushed and gone: the file is all there is
    assert qemu_decrypted(volume, pool.path(volume), tmp_path) == data
    for name in os.listdir(pool.pool_dir):
        assert MARKER not in (pool.pool_dir / name).read_bytes(), name
    assert os.listdir(pool.pool_dir) == [pool.path(volume).name]  # no key file, no socket left


@pytest.mark.parametrize("fmt", FORMATS)
async def test_zeros_written_over_data_read_as_zeros(pool, fmt, tmp_path):
    volume = await encrypted(pool, fmt, 4 * MiB)
    await upload(pool, volume, MARKER * (4 * MiB // len(MARKER)), 4 * MiB, gzipped=False)
    await pool.write(volume, 1 * MiB, body(bytes(2 * MiB)), gzip=False, max_decompressed=8 * MiB)
    expected = bytearray(await read_all(pool, volume))
    assert expected[1 * MiB : 3 * MiB] == bytes(2 * MiB) and MARKER in expected[: 1 * MiB]
    await pool.close()
    assert qemu_decrypted(volume, pool.path(volume), tmp_path) == expected
    if fmt == "raw":
        # Written, not punched: a hole under LUKS would decrypt to noise, to a guest as to us.
        # (Only the LUKS header's unused key slots stay sparse.)
        assert pool.path(volume).stat().st_blocks * 512 >= volume.size


@pytest.mark.parametrize("fmt", FORMATS)
async def test_resize_grows_with_zeros(pool, fmt, tmp_path):
    volume = await encrypted(pool, fmt, 2 * MiB)
    await upload(pool, volume, MARKER * 1000, 1 * MiB)
    await pool.resize(volume, 5 * MiB + 1024)
    grown = Volume(volume.drive, fmt, 5 * MiB + 1024, volume.secret)
    data = await read_all(pool, grown)
    written = len(MARKER) * 1000
    assert data[:written] == MARKER * 1000 and data[written:] == bytes(grown.size - written)
    await pool.close()
    assert qemu_decrypted(grown, pool.path(grown), tmp_path) == data


async def test_a_wrong_passphrase_opens_nothing(pool):
    volume = await encrypted(pool, "raw", 1 * MiB)
    wrong = Volume(volume.drive, "raw", volume.size, passphrase())
    await pool.release(volume)  # the export made while creating it lingers with the right key
    with pytest.raises(FailedError):
        await read_all(pool, wrong)
    assert await read_all(pool, volume) == bytes(volume.size)


@pytest.mark.parametrize(
    "source_format, source_encrypted, target_format, target_encrypted",
    [
        ("raw", True, "raw", False),
        ("raw", False, "raw", True),
        ("qcow2", True, "raw", True),
        ("raw", True, "qcow2", False),
        ("qcow2", False, "qcow2", True),
    ],
)
async def test_imaging_between_encrypted_and_plain(
    pool, tmp_path, source_format, source_encrypted, target_format, target_encrypted
):
    size = 5 * MiB + 4096
    data = mixed(size, seed=3)
    source = Volume(str(uuid.uuid4()), source_format, size, passphrase() if source_encrypted else None)
    target = Volume(str(uuid.uuid4()), target_format, size + 3 * MiB, passphrase() if target_encrypted else None)
    await pool.create(source)
    await pool.create(target)
    await upload(pool, target, b"\xff" * (size + 3 * MiB), 4 * MiB, gzipped=False)  # old bytes to replace
    await upload(pool, source, data, 4 * MiB)
    await pool.copy(source, target, "", lambda done, total: None)
    expected = data + bytes(3 * MiB)
    assert await read_all(pool, target) == expected
    await pool.close()
    if target_encrypted:
        assert qemu_decrypted(target, pool.path(target), tmp_path) == expected
        assert b"The quick brown fox" not in pool.path(target).read_bytes()


async def test_the_passphrase_is_never_on_a_command_line_nor_in_a_file(pool):
    volume = await encrypted(pool, "qcow2", 1 * MiB)
    assert volume.secret is not None
    reads = pool.read(volume, 0, 4096)
    assert await anext(reads) == bytes(4096)  # the export is up while the generator is open
    try:
        found = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-storage-daemon" in cmdline and volume.drive.encode() in cmdline:
                found += 1
                assert volume.secret not in cmdline and b"data=" not in cmdline
        assert found == 1
        assert os.listdir(pool.pool_dir) == [pool.path(volume).name]
    finally:
        await reads.aclose()
    assert volume.secret.decode() not in repr(volume)


def daemon_pids(volume: Volume) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"qemu-storage-daemon\0") and volume.drive.encode() in cmdline:
            pids.append(int(pid))
    return pids


def hold_image(volume: Volume, path: Path) -> subprocess.Popen[bytes]:
    """A paused QEMU with the volume as its virtio disk, holding qemu's image lock as a running
    guest does (a second writer refused); it is ready once it greets on its QMP monitor."""
    assert volume.secret is not None
    read, write = os.pipe()
    os.write(write, volume.secret)
    os.close(write)
    try:
        holder = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-S",
                "-nodefaults",
                "-display",
                "none",
                "-M",
                "q35",
                "-accel",
                "tcg",
                "-object",
                f"secret,id=s,format=raw,file=/proc/self/fd/{read}",
                "-blockdev",
                f"driver=file,node-name=f,filename={qemu_escape(str(path))}",
                "-blockdev",
                "driver=luks,key-secret=s,node-name=d,file=f",
                "-device",
                "virtio-blk-pci,drive=d",
                "-qmp",
                "stdio",
            ],
            pass_fds=(read,),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    finally:
        os.close(read)
    assert holder.stdout is not None and holder.stdin is not None
    assert b"QMP" in holder.stdout.readline()
    # The greeting can come before the disk's device exists (and takes the image's write lock):
    # QMP commands are answered from the main loop, which runs only once the machine is built.
    holder.stdin.write(b'{"execute": "qmp_capabilities"}\n')
    holder.stdin.flush()
    assert b'"return"' in holder.stdout.readline()
    return holder


async def test_an_encrypted_raw_volume_is_striped_over_several_daemons(pool, tmp_path):
    volume = await encrypted(pool, "raw", 8 * MiB)
    data = mixed(volume.size, seed=21)
    reads = pool.read(volume, 0, volume.size)
    await anext(reads)
    try:
        assert len(daemon_pids(volume)) == LANES
        await upload(pool, volume, data, 3 * MiB + 5)  # pieces that straddle the stripes
    finally:
        await reads.aclose()
    assert await read_all(pool, volume) == data
    await pool.close()
    assert daemon_pids(volume) == []
    assert qemu_decrypted(volume, pool.path(volume), tmp_path) == data


async def test_lanes_do_not_open_a_volume_another_program_holds(pool):
    """Only the first lane takes qemu's image lock, and its refusal stops the whole set."""
    volume = await encrypted(pool, "raw", 2 * MiB)
    holder = await asyncio.to_thread(hold_image, volume, pool.path(volume))
    try:
        with pytest.raises(FailedError):
            await read_all(pool, volume)
        assert daemon_pids(volume) == [] and not pool.exports()
    finally:
        holder.kill()
        holder.communicate()  # reaps it and closes its pipes
    assert await read_all(pool, volume) == bytes(volume.size)  # and once it has gone, they open


async def test_concurrent_unaligned_writes_sharing_sectors_across_stripes(pool, tmp_path):
    """Each request a read-modify-write of the sectors it touches: two of them on one sector must
    go through one daemon, which orders them, or one would undo the other."""
    volume = await encrypted(pool, "raw", 4 * MiB)
    expected = bytearray(volume.size)
    writes = []
    for boundary in (MiB, 2 * MiB, 3 * MiB):
        for start, length, fill in (
            (boundary - 700, 300, 0x11),
            (boundary - 400, 300, 0x22),
            (boundary - 100, 150, 0x33),
            (boundary + 50, 100, 0x44),
            (boundary + 150, 3, 0x55),
        ):
            expected[start : start + length] = bytes([fill]) * length
            writes.append(pool.write(volume, start, body(bytes([fill]) * length), gzip=False, max_decompressed=MiB))
    await asyncio.gather(*writes)
    assert await read_all(pool, volume) == expected
    await pool.close()
    assert qemu_decrypted(volume, pool.path(volume), tmp_path) == expected


async def test_a_dead_lane_brings_up_a_whole_new_set(pool):
    volume = await encrypted(pool, "raw", 4 * MiB)
    data = mixed(volume.size, seed=5)
    await upload(pool, volume, data, MiB)
    reads = pool.read(volume, 0, MiB)
    await anext(reads)
    first = daemon_pids(volume)
    os.kill(first[-1], signal.SIGKILL)
    await reads.aclose()
    while not pool._exports._exports[volume.drive].client.closed:  # its connection's end is seen
        await asyncio.sleep(0.01)
    assert await read_all(pool, volume) == data
    second = daemon_pids(volume)
    assert len(second) == LANES and not set(first) & set(second)


async def test_destroy_removes_the_luks_file(pool):
    volume = await encrypted(pool, "raw", 1 * MiB)
    await read_all(pool, volume)
    await pool.destroy(Volume(volume.drive, "raw", 0))  # no key needed to remove a drive
    assert os.listdir(pool.pool_dir) == [] and await pool.volumes() == set()
