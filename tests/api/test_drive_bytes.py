"""Drive bytes over HTTP: gzip writes, reads, ends, bombs, counters, ownership, real files."""

from __future__ import annotations

import gzip
import os
import subprocess
import uuid
import zlib

import pytest

from elastic_api.http.transfer import SENDFILE

MiB = 1 << 20


def mixed(size: int, seed: int = 1) -> bytes:
    """Random, text and zero regions, at sizes that are not block multiples."""
    rnd = __import__("random").Random(seed)
    parts, total = [], 0
    while total < size:
        kind = rnd.choice("rtz")
        n = rnd.randint(1, 700_000)
        parts.append(
            rnd.randbytes(n)
            if kind == "r"
            else (b"elastic text region\n" * (n // 20 + 1))[:n]
            if kind == "t"
            else bytes(n)
        )
        total += n
    return b"".join(parts)[:size]


async def upload(api, drive, data, chunk, *, start=0):
    for offset in range(0, len(data), chunk):
        body = gzip.compress(data[offset : offset + chunk], 1)
        reply = await api.call(f"/drives/{drive}/write/{start + offset}", body, headers={"Content-Encoding": "gzip"})
        assert reply.status == 204, reply.text


async def download(api, drive, size, chunk=4 * MiB):
    out = bytearray()
    for offset in range(0, size, chunk):
        reply = await api.get(f"/drives/{drive}/read/{offset}/{chunk}")
        assert reply.status == 200 and reply.headers["Content-Type"] == "application/octet-stream"
        out += reply.body
    return bytes(out)


def qemu_raw(path, fmt, tmp_path):
    out = tmp_path / f"converted-{uuid.uuid4()}.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", str(path), str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
@pytest.mark.parametrize("chunk", [1 * MiB, 4 * MiB, 5 * MiB])
async def test_round_trip(alice, config, tmp_path, fmt, chunk):
    size = 11 * MiB + 12345
    data = mixed(size, seed=chunk)
    drive = (await alice.create_drive(str(size), format=fmt))["drive"]
    await upload(alice, drive, data, chunk)
    assert await download(alice, drive, size) == data
    path = config.pool_dir / f"{drive}.{fmt}"
    if fmt == "qcow2":
        subprocess.run(["qemu-img", "check", "-U", "-q", "-f", "qcow2", str(path)], check=True)
    converted = qemu_raw(path, fmt, tmp_path)  # qemu rounds a size up to whole 512-byte sectors
    assert converted[:size] == data and not converted[size:].strip(b"\0")
    info = (await alice.get(f"/drives/{drive}/info", as_json=True)).json
    assert info["write:bytes"] == size and info["write:requests"] == -(-size // chunk)
    assert info["read:bytes"] == size


async def test_raw_unaligned_offsets_and_resume(alice):
    drive = (await alice.create_drive("3M"))["drive"]
    data = os.urandom(1000)
    for _ in range(2):  # sending the same chunk twice is harmless: that is how resume works
        reply = await alice.call(f"/drives/{drive}/write/4097", data)  # raw body, no gzip
        assert reply.status == 204
    assert (await alice.get(f"/drives/{drive}/read/4097/1000")).body == data
    assert (await alice.get(f"/drives/{drive}/read/0/4097")).body == bytes(4097)


async def test_offset_suffixes_and_default_offset(alice):
    drive = (await alice.create_drive("2M"))["drive"]
    assert (await alice.call(f"/drives/{drive}/write/1M", b"x" * 10)).status == 204
    assert (await alice.call(f"/drives/{drive}/write", b"y" * 10)).status == 204
    assert (await alice.get(f"/drives/{drive}/read/1M/10")).body == b"x" * 10
    assert (await alice.get(f"/drives/{drive}/read/0/1k")).body[:11] == b"y" * 10 + b"\0"


async def test_chunked_transfer(alice):
    drive = (await alice.create_drive("1M"))["drive"]
    payload = os.urandom(300_000)
    compressed = gzip.compress(payload)

    async def body():
        for i in range(0, len(compressed), 7000):
            yield compressed[i : i + 7000]

    reply = await alice.call(f"/drives/{drive}/write/0", body(), headers={"Content-Encoding": "gzip"})
    assert reply.status == 204
    assert (await alice.get(f"/drives/{drive}/read/0/300000")).body == payload


async def test_reads_keep_their_framing_in_sender_threads_and_on_the_loop(alice, client):
    """A read's head goes out with its bytes from a sender thread, or by the loop when every
    thread is busy: either way, answers on one kept-alive connection follow each other exactly."""
    drive = (await alice.create_drive("3M", **{"encryption:cipher": "none"}))["drive"]
    data = os.urandom(3 * MiB)
    await alice.call(f"/drives/{drive}/write/0", data)
    sender = client.app[SENDFILE]
    for busy in (False, True, False):
        taken = 0
        while busy and sender.try_take():
            taken += 1
        try:
            for offset, size in ((0, MiB), (12345, 2 * MiB), (3 * MiB - 7, 100)):
                reply = await alice.get(f"/drives/{drive}/read/{offset}/{size}")
                expected = data[offset : offset + size]
                assert (reply.status, reply.body) == (200, expected)
                assert reply.headers["Content-Length"] == str(len(expected))
                assert reply.headers["Server"] == "elastic-api"
            head = await alice.call(f"/drives/{drive}/read/0/1M", method="HEAD")
            assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(MiB))
        finally:
            for _ in range(taken):
                sender.give_back()


async def test_zero_chunks_over_old_data_read_back_as_zeros(alice):
    drive = (await alice.create_drive("2M"))["drive"]
    await alice.call(f"/drives/{drive}/write/0", os.urandom(MiB))
    await alice.call(f"/drives/{drive}/write/0", gzip.compress(bytes(MiB)), headers={"Content-Encoding": "gzip"})
    assert (await alice.get(f"/drives/{drive}/read/0/1M")).body == bytes(MiB)


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
async def test_write_past_the_end_is_507_and_writes_nothing(alice, fmt):
    drive = (await alice.create_drive("1M", format=fmt))["drive"]
    for offset, body, headers in (
        (MiB - 10, os.urandom(20), {}),
        (MiB - 10, gzip.compress(os.urandom(20)), {"Content-Encoding": "gzip"}),
        (0, gzip.compress(b"\1" * (MiB + 1)), {"Content-Encoding": "gzip"}),
        (2 * MiB, b"x", {}),
    ):
        reply = await alice.call(f"/drives/{drive}/write/{offset}", body, headers=headers)
        assert (reply.status, reply.error) == (507, "full")
    assert (await alice.get(f"/drives/{drive}/read/0/1M")).body == bytes(MiB)


@pytest.mark.parametrize(
    "body, status",
    [
        (gzip.compress(b"data" * 1000)[:-6], 400),  # truncated
        (gzip.compress(b"data" * 1000) + b"garbage!", 400),  # trailing garbage
        (b"\x1f\x8b\x08\x00garbage-not-deflate", 400),
    ],
)
async def test_malformed_gzip_leaves_the_drive_unchanged(alice, body, status):
    drive = (await alice.create_drive("1M"))["drive"]
    await alice.call(f"/drives/{drive}/write/0", b"before" * 100)
    reply = await alice.call(f"/drives/{drive}/write/0", body, headers={"Content-Encoding": "gzip"})
    assert (reply.status, reply.error) == (status, "usage")
    assert (await alice.get(f"/drives/{drive}/read/0/600")).body == b"before" * 100


async def test_gzip_bomb_is_413(alice, client):
    from elastic_api.app import CONFIG

    cap = client.app[CONFIG].max_write_decompressed
    drive = (await alice.create_drive("4G"))["drive"]
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(16 * MiB)
    bomb = b"".join(compressor.compress(zeros) for _ in range(cap // len(zeros) + 2)) + compressor.flush()
    assert len(bomb) < 4 * MiB
    reply = await alice.call(f"/drives/{drive}/write/0", bomb, headers={"Content-Encoding": "gzip"})
    assert (reply.status, reply.error) == (413, "usage")


async def test_other_content_encodings_are_refused(alice):
    drive = (await alice.create_drive("1M"))["drive"]
    reply = await alice.call(f"/drives/{drive}/write/0", zlib.compress(b"x"), headers={"Content-Encoding": "deflate"})
    assert (reply.status, reply.error) == (400, "usage")


async def test_reads_at_and_past_the_end(alice):
    drive = (await alice.create_drive("1000"))["drive"]
    await alice.call(f"/drives/{drive}/write/0", b"z" * 1000)
    tail = await alice.get(f"/drives/{drive}/read/990/4M")
    assert tail.status == 200 and tail.body == b"z" * 10 and tail.headers["Content-Length"] == "10"
    for offset in ("1000", "5000", "1G"):
        reply = await alice.get(f"/drives/{drive}/read/{offset}/10")
        assert (reply.status, reply.error) == (400, "usage")
    for bad in ("0/0", "0/65M", "x/10", "-1/10", "0/1.5k"):
        reply = await alice.get(f"/drives/{drive}/read/{bad}")
        assert (reply.status, reply.error) == (400, "usage"), bad


async def test_gzip_read_for_clients_that_accept_it(alice):
    drive = (await alice.create_drive("2M"))["drive"]
    data = mixed(2 * MiB)
    await alice.call(f"/drives/{drive}/write/0", data)
    async with alice.client.get(
        f"/drives/{drive}/read/0/2M", auto_decompress=False, headers={**alice.auth(), "Accept-Encoding": "gzip"}
    ) as response:
        assert response.status == 200 and response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await response.read()) == data


async def test_write_is_post_only_and_read_takes_both(alice):
    drive = (await alice.create_drive("1M"))["drive"]
    assert (await alice.get(f"/drives/{drive}/write/0")).status == 405
    assert (await alice.call(f"/drives/{drive}/read/0/10")).status == 200


async def test_readers_read_but_never_write(alice, bob, make_user):
    carol = await make_user()
    drive = (await alice.create_drive("1M", readers=bob.user))["drive"]
    await alice.call(f"/drives/{drive}/write/0", b"shared")
    assert (await bob.get(f"/drives/{drive}/read/0/6")).body == b"shared"
    for user in (bob, carol):
        reply = await user.call(f"/drives/{drive}/write/0", b"stolen")
        assert (reply.status, reply.error) == (404, "missing")
    assert (await carol.get(f"/drives/{drive}/read/0/6")).status == 404
    assert (await alice.get(f"/drives/{drive}/read/0/6")).body == b"shared"


async def test_sparse_zero_upload(alice, config):
    drive = (await alice.create_drive("64M"))["drive"]
    await upload(alice, drive, bytes(64 * MiB), 4 * MiB)
    assert (config.pool_dir / f"{drive}.raw").stat().st_blocks * 512 < MiB


async def test_checksum_extension(alice, bob):
    import hashlib

    drive = (await alice.create_drive("3M", format="qcow2"))["drive"]
    data = mixed(3 * MiB, seed=4)
    await alice.call(f"/drives/{drive}/write/0", data)
    whole = (await alice.get(f"/drives/{drive}/checksum")).props()
    assert whole["sha256"] == hashlib.sha256(data).hexdigest() and whole["size"] == str(3 * MiB)
    part = (await alice.call(f"/drives/{drive}/checksum/1M/4M", as_json=True)).json
    assert part["sha256"] == hashlib.sha256(data[MiB:]).hexdigest() and part["size"] == 2 * MiB
    assert (await alice.get(f"/drives/{drive}/checksum/3M/1")).status == 400
    assert (await bob.get(f"/drives/{drive}/checksum")).status == 404


async def test_checksum_is_capped(alice, client):
    from elastic_api.app import CONFIG

    cap = client.app[CONFIG].max_checksum_size
    drive = (await alice.create_drive(str(cap + 1)))["drive"]
    assert (await alice.get(f"/drives/{drive}/checksum")).status == 400
    assert (await alice.get(f"/drives/{drive}/checksum/0/1M")).status == 200


async def test_a_drive_one_cannot_see_is_404_before_its_offset_or_size_is_read(alice, bob):
    """Offsets and sizes are parsed at the edge; a bad one still answers 404 for a drive the user
    may not see (or, for a write, may not change), and a 400 naming it only on one's own."""
    drive = (await alice.create_drive("1M", readers=bob.user))["drive"]
    missing = str(uuid.uuid4())
    for path in ("read/x/10", "read/0/x", "checksum/x/10", "checksum/0/-1"):
        assert (await alice.get(f"/drives/{missing}/{path}")).status == 404, path
        mine = await alice.get(f"/drives/{drive}/{path}")
        assert (mine.status, mine.error) == (400, "usage"), path
        assert (await bob.get(f"/drives/{drive}/{path}")).status == 400, path  # a reader sees the drive
    for user in (alice, bob):
        reply = await user.call(f"/drives/{drive if user is bob else missing}/write/x", b"data")
        assert (reply.status, reply.error) == (404, "missing")
    reply = await alice.call(f"/drives/{drive}/write/x", b"data")
    assert (reply.status, reply.error) == (400, "usage")
    assert reply.text.startswith("offset must be a number of bytes, optionally with k, M, G or T"), reply.text
