"""New qcow2 images with LUKS encryption inside, built by pure functions instead of `qemu-img`.

Why not `qemu-img create`: it calibrates PBKDF2 for every image (over a second of CPU, twice over:
the master key digest and the key slot), so 20 concurrent encrypted creates took 25 s. Our
passphrases are 256 random bits, which key stretching cannot strengthen, so the iteration counts
here are LUKS's minimum (1,000) and an image costs a few milliseconds of hashing and AES.

The layout is the one qemu-img 7.2 writes for `-f qcow2 -o cluster_size=65536,encrypt.format=luks`
(docs/interop/qcow2.txt and the LUKS1 on-disk format specification): a version 3 header with a
"full disk encryption header pointer" extension, one refcount table cluster, one refcount block,
the L1 table, then the LUKS1 header and its eight key slot areas in clusters of their own. Only
slot 0 is active. Data clusters are encrypted by QEMU with the master key, AES-256-XTS, plain64
sector IVs; unallocated clusters read as zeros, so the image is thin whatever its size.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CLUSTER_BITS = 16
CLUSTER = 1 << CLUSTER_BITS
# 16-bit refcounts (qemu's default refcount_order 4): one refcount block covers 32,768 clusters
# (2 GiB of image file), far more than the metadata we write.
REFCOUNT_ORDER = 4
# One L2 table maps CLUSTER / 8 clusters, so one L1 entry covers 512 MiB of guest bytes.
L1_ENTRY_COVERS = CLUSTER * (CLUSTER // 8)
HEADER_LENGTH = 112  # version 3 with the compression type byte (zlib) and its padding
CRYPT_LUKS = 2
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_BACKING_FORMAT = 0xE2792ACA
SECTOR = 512

LUKS_MAGIC = b"LUKS\xba\xbe"
LUKS_HEADER = struct.Struct(">6sH32s32s32sII20s32sI40s")
LUKS_SLOT = struct.Struct(">II32sII")
LUKS_SLOTS = 8
LUKS_STRIPES = 4000
LUKS_KEY_BYTES = 64  # AES-256 in XTS mode takes two 256-bit keys
LUKS_DIGEST_BYTES = 20
LUKS_SALT_BYTES = 32
LUKS_SLOT_ACTIVE = 0x00AC71F3
LUKS_SLOT_INACTIVE = 0x0000DEAD
# Key material starts at 4 KiB and each slot's area is aligned to 4 KiB (8 sectors), as qemu lays it.
LUKS_SLOT_OFFSET = 4096
LUKS_ALIGN_SECTORS = 8
# LUKS's minimum PBKDF2 iterations, for the digest and the slot alike: a random 256-bit
# passphrase needs no stretching, and every open (each export, each guest start) pays this.
LUKS_ITERATIONS = 1000
HASH = "sha256"


@dataclass(frozen=True)
class Image:
    """A new image as the pieces to write (offset → bytes) into a file of `length` bytes; the
    rest of the file is holes, which read as the zeros qcow2 expects there."""

    pieces: tuple[tuple[int, bytes], ...]
    length: int


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _xts(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """AES-XTS over 512-byte sectors numbered from 0 with plain64 IVs, as LUKS key slots are."""
    out = bytearray()
    for sector, start in enumerate(range(0, len(data), SECTOR)):
        cipher = Cipher(algorithms.AES(key), modes.XTS(sector.to_bytes(16, "little")))
        worker = cipher.decryptor() if decrypt else cipher.encryptor()
        out += worker.update(data[start : start + SECTOR]) + worker.finalize()
    return bytes(out)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _diffuse(block: bytes) -> bytes:
    """The LUKS anti-forensic diffusion: each digest-sized piece i becomes H(be32(i) || piece)."""
    size = hashlib.new(HASH).digest_size
    return b"".join(
        hashlib.new(HASH, index.to_bytes(4, "big") + block[start : start + size]).digest()[
            : len(block[start : start + size])
        ]
        for index, start in enumerate(range(0, len(block), size))
    )


def af_split(key: bytes, stripes: int, random: Callable[[int], bytes]) -> bytes:
    """Spread key over `stripes` blocks so that losing any one block loses the key (LUKS AF)."""
    size = len(key)
    noise = random(size * (stripes - 1))
    acc = bytes(size)
    for start in range(0, len(noise), size):
        acc = _diffuse(_xor(acc, noise[start : start + size]))
    return noise + _xor(acc, key)


def af_merge(material: bytes, key_bytes: int, stripes: int) -> bytes:
    """The inverse of af_split (for tests and for reading a slot back)."""
    acc = bytes(key_bytes)
    for index in range(stripes - 1):
        acc = _diffuse(_xor(acc, material[index * key_bytes : (index + 1) * key_bytes]))
    return _xor(acc, material[(stripes - 1) * key_bytes : stripes * key_bytes])


def _pbkdf2(secret: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    return hashlib.pbkdf2_hmac(HASH, secret, salt, iterations, length)


def _slot_sectors() -> int:
    return _round_up(LUKS_KEY_BYTES * LUKS_STRIPES, SECTOR) // SECTOR


def luks_header(
    passphrase: bytes, *, iterations: int = LUKS_ITERATIONS, random: Callable[[int], bytes] = os.urandom
) -> tuple[tuple[tuple[int, bytes], ...], int]:
    """A LUKS1 header whose slot 0 opens with passphrase: its pieces (offset within the header
    area → bytes) and the area's length (where the payload would start)."""
    master = random(LUKS_KEY_BYTES)
    digest_salt = random(LUKS_SALT_BYTES)
    slot_salt = random(LUKS_SALT_BYTES)
    slot_sectors = _round_up(_slot_sectors(), LUKS_ALIGN_SECTORS)
    first = LUKS_SLOT_OFFSET // SECTOR
    offsets = [first + index * slot_sectors for index in range(LUKS_SLOTS)]
    payload = offsets[-1] + slot_sectors

    slot_key = _pbkdf2(passphrase, slot_salt, iterations, LUKS_KEY_BYTES)
    material = _xts(slot_key, af_split(master, LUKS_STRIPES, random))
    header = LUKS_HEADER.pack(
        LUKS_MAGIC,
        1,
        b"aes",
        b"xts-plain64",
        HASH.encode(),
        payload,
        LUKS_KEY_BYTES,
        _pbkdf2(master, digest_salt, iterations, LUKS_DIGEST_BYTES),
        digest_salt,
        iterations,
        str(uuid.UUID(bytes=random(16), version=4)).encode(),
    )
    slots = b"".join(
        LUKS_SLOT.pack(LUKS_SLOT_ACTIVE, iterations, slot_salt, offset, LUKS_STRIPES)
        if index == 0
        else LUKS_SLOT.pack(LUKS_SLOT_INACTIVE, 0, bytes(LUKS_SALT_BYTES), offset, LUKS_STRIPES)
        for index, offset in enumerate(offsets)
    )
    return ((0, header + slots), (offsets[0] * SECTOR, material)), payload * SECTOR


def luks_master_key(area: bytes, passphrase: bytes) -> bytes | None:
    """The master key of a LUKS1 header area when passphrase opens slot 0 and the digest matches,
    else None. Reads back what luks_header writes (tests; qemu does the real opening)."""
    fields = LUKS_HEADER.unpack_from(area)
    key_bytes, digest, digest_salt, digest_iterations = fields[6], fields[7], fields[8], fields[9]
    active, iterations, salt, offset, stripes = LUKS_SLOT.unpack_from(area, LUKS_HEADER.size)
    if fields[0] != LUKS_MAGIC or active != LUKS_SLOT_ACTIVE:
        return None
    length = _round_up(key_bytes * stripes, SECTOR)
    material = _xts(
        _pbkdf2(passphrase, salt, iterations, key_bytes), area[offset * SECTOR : offset * SECTOR + length], decrypt=True
    )
    master = af_merge(material, key_bytes, stripes)
    ok = _pbkdf2(master, digest_salt, digest_iterations, LUKS_DIGEST_BYTES) == digest
    return master if ok else None


def _extension(kind: int, data: bytes) -> bytes:
    """A qcow2 header extension: type, length, data padded to 8 bytes."""
    return struct.pack(">II", kind, len(data)) + data + bytes(_round_up(len(data), 8) - len(data))


def qcow2_luks_image(
    size: int,
    passphrase: bytes,
    *,
    iterations: int = LUKS_ITERATIONS,
    random: Callable[[int], bytes] = os.urandom,
    backing: tuple[str, str] | None = None,
    luks: tuple[tuple[tuple[int, bytes], ...], int] | None = None,
) -> Image:
    """A new, empty qcow2 image of `size` guest bytes (a whole number of sectors), encrypted with
    LUKS under passphrase; with `backing` (absolute path, format), an overlay whose unallocated
    clusters read from that unencrypted file (QEMU encrypts the clusters copied up on write with
    this image's key, and reads the backing file's bytes as they are). `luks` reuses a LUKS
    area already made for this passphrase (pieces, length: see luks_area), skipping the key
    slot's few milliseconds of hashing and AES."""
    if size < 0 or size % SECTOR:
        raise ValueError("size must be a non-negative multiple of 512")
    backing_name = b""
    if backing is not None:
        backing_name = os.fsencode(backing[0])
        if not backing[0].startswith("/") or backing[1] not in ("raw", "qcow2") or len(backing_name) > 1023:
            raise ValueError("a backing file is an absolute path (at most 1023 bytes), raw or qcow2")
    l1_entries = max(1, -(-size // L1_ENTRY_COVERS))
    l1_clusters = _round_up(l1_entries * 8, CLUSTER) // CLUSTER
    luks_pieces, luks_length = luks or luks_header(passphrase, iterations=iterations, random=random)
    luks_clusters = _round_up(luks_length, CLUSTER) // CLUSTER

    refcount_table, refcount_block, l1_table = CLUSTER, 2 * CLUSTER, 3 * CLUSTER
    luks_offset = l1_table + l1_clusters * CLUSTER
    clusters = 3 + l1_clusters + luks_clusters
    if clusters > CLUSTER * 8 // (1 << REFCOUNT_ORDER):
        raise ValueError("drive too large for one refcount block")

    extensions = _extension(EXT_CRYPTO_HEADER, struct.pack(">QQ", luks_offset, luks_length))
    if backing is not None:
        # The format is always written: QEMU would otherwise probe the base's bytes for one.
        extensions += _extension(EXT_BACKING_FORMAT, backing[1].encode())
    extensions += struct.pack(">II", 0, 0)
    # The backing file's name follows the extensions, inside the header cluster.
    backing_offset = HEADER_LENGTH + len(extensions) if backing_name else 0
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQIIB7x",
        b"QFI\xfb",
        3,
        backing_offset,
        len(backing_name),
        CLUSTER_BITS,
        size,
        CRYPT_LUKS,
        l1_entries,
        l1_table,
        refcount_table,
        1,
        0,
        0,
        0,
        0,
        0,
        REFCOUNT_ORDER,
        HEADER_LENGTH,
        0,
    )
    pieces = [
        (0, header + extensions + backing_name),
        (refcount_table, struct.pack(">Q", refcount_block)),
        (refcount_block, struct.pack(f">{clusters}H", *([1] * clusters))),
    ]
    pieces += [(luks_offset + offset, data) for offset, data in luks_pieces]
    # The L1 table stays a hole: all zero entries, no L2 tables, no data clusters.
    return Image(tuple(pieces), clusters * CLUSTER)


def qcow2_overlay(size: int, backing: tuple[str, str]) -> Image:
    """A new, plain qcow2 image of `size` guest bytes over a backing file (absolute path, format),
    laid out as qcow2_luks_image's without the encryption: what `qemu-img create -b -F` writes,
    without a process to start."""
    if size < 0 or size % SECTOR:
        raise ValueError("size must be a non-negative multiple of 512")
    backing_name = os.fsencode(backing[0])
    if not backing[0].startswith("/") or backing[1] not in ("raw", "qcow2") or len(backing_name) > 1023:
        raise ValueError("a backing file is an absolute path (at most 1023 bytes), raw or qcow2")
    l1_entries = max(1, -(-size // L1_ENTRY_COVERS))
    l1_clusters = _round_up(l1_entries * 8, CLUSTER) // CLUSTER
    refcount_table, refcount_block, l1_table = CLUSTER, 2 * CLUSTER, 3 * CLUSTER
    clusters = 3 + l1_clusters
    extensions = _extension(EXT_BACKING_FORMAT, backing[1].encode()) + struct.pack(">II", 0, 0)
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQIIB7x",
        b"QFI\xfb",
        3,
        HEADER_LENGTH + len(extensions),
        len(backing_name),
        CLUSTER_BITS,
        size,
        0,
        l1_entries,
        l1_table,
        refcount_table,
        1,
        0,
        0,
        0,
        0,
        0,
        REFCOUNT_ORDER,
        HEADER_LENGTH,
        0,
    )
    return Image(
        (
            (0, header + extensions + backing_name),
            (refcount_table, struct.pack(">Q", refcount_block)),
            (refcount_block, struct.pack(f">{clusters}H", *([1] * clusters))),
        ),
        clusters * CLUSTER,
    )


def luks_area(head: bytes) -> tuple[int, int] | None:
    """Where a qcow2 image's LUKS area lies (offset, length), from its header cluster; None when
    it is not a LUKS-encrypted qcow2 image."""
    if len(head) < HEADER_LENGTH or head[:4] != b"QFI\xfb":
        return None
    (version,) = struct.unpack_from(">I", head, 4)
    (crypt,) = struct.unpack_from(">I", head, 32)
    if version != 3 or crypt != CRYPT_LUKS:
        return None
    (pos,) = struct.unpack_from(">I", head, 100)  # header_length: the extensions follow it
    while pos + 8 <= len(head):
        kind, length = struct.unpack_from(">II", head, pos)
        if kind == 0:
            return None
        if kind == EXT_CRYPTO_HEADER and length == 16 and pos + 24 <= len(head):
            offset, size = struct.unpack_from(">QQ", head, pos + 8)
            return int(offset), int(size)
        pos += 8 + _round_up(length, 8)
    return None


__all__ = ["Image", "af_merge", "af_split", "luks_area", "luks_header", "luks_master_key", "qcow2_luks_image"]
