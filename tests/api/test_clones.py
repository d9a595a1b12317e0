"""Copy-on-write imaging through the real program: `elastic-api image add`, then `/gunzip` into a
raw, a qcow2 and an encrypted (qcow2 with LUKS inside) drive; each reads back byte for byte as the
image, takes writes, and keeps the image's base from `elastic-api image remove` until it goes."""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.support import Server, create_user, request, run_cli, write_config

IMAGE = "5f0e9d57-1d1c-4c0e-9d6b-2a6a4b1f3e21"
MiB = 1 << 20
LAYOUTS = {
    "raw": "format raw\n",
    "qcow2": "format qcow2\n",
    "qcow2-luks": "format qcow2\nencryption:cipher aes-xts-plain\n",
}


def _image() -> bytes:
    rng = random.Random(17)
    return rng.randbytes(300_000) + bytes(700_000) + b"boot sector text " * 4000 + rng.randbytes(5)


@pytest.fixture
def installation(tmp_path):
    config = write_config(tmp_path)
    data = _image()
    raw = tmp_path / "image.raw"
    raw.write_bytes(data)
    added = run_cli(config, "image", "add", "--uuid", IMAGE, "--name", "Clone me", str(raw))
    assert added.returncode == 0, added.stderr
    server = Server(config).start()
    user, secret = create_user(config)
    yield config, server, user, secret, data
    server.stop()


def _call(server, user, secret, path, body=None, method="POST"):
    return request(server.url + path, user, secret, body, method=method)


def _props(body: bytes) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in body.decode().splitlines() if " " in line)


def _imaged(server, user, secret, drive, timeout=60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = _call(server, user, secret, f"/drives/{drive}/info", method="GET")
        assert status == 200
        info = _props(body)
        if "imaging" not in info:
            return info
        time.sleep(0.05)
    raise AssertionError("imaging did not finish")


def test_clones_read_write_and_hold_their_base(installation):
    config, server, user, secret, data = installation
    drives = {}
    for layout, props in LAYOUTS.items():
        status, _, body = _call(
            server, user, secret, "/drives/create", f"name {layout}\nsize {4 * MiB}\n{props}".encode()
        )
        assert status == 200, body
        drive = _props(body)["drive"]
        drives[layout] = drive
        status, _, body = _call(server, user, secret, f"/drives/{drive}/image/{IMAGE}/gunzip")
        assert status == 204, body
    expected = data + bytes(4 * MiB - len(data))
    for layout, drive in drives.items():
        info = _imaged(server, user, secret, drive)
        assert "imaging:error" not in info, info
        status, _, body = _call(server, user, secret, f"/drives/{drive}/read/0/{4 * MiB}", method="GET")
        assert status == 200 and body == expected, layout
        # The clone's own writes land over the image's bytes, inside one of its clusters.
        patch = os.urandom(3000)
        status, _, _ = _call(server, user, secret, f"/drives/{drive}/write/150001", patch)
        assert status == 204
        status, _, body = _call(server, user, secret, f"/drives/{drive}/read/149000/8000", method="GET")
        assert body == expected[149000:150001] + patch + expected[153001:157000], layout
        status, _, body = _call(server, user, secret, f"/drives/{drive}/set", f"size {6 * MiB}".encode())
        assert status == 200, body
        status, _, body = _call(server, user, secret, f"/drives/{drive}/read/{4 * MiB}/{MiB}", method="GET")
        assert status == 200 and body == bytes(MiB), layout

    # The qcow2 clones are overlays on the image's base: the image cannot go while they live.
    refused = run_cli(config, "image", "remove", IMAGE)
    assert refused.returncode == 2 and "in use by 2 drive(s)" in refused.stderr, refused.stderr
    assert drives["qcow2"] in refused.stderr and drives["qcow2-luks"] in refused.stderr
    status, _, body = _call(server, user, secret, "/drives/list/standard", method="GET")
    assert IMAGE in body.decode()
    for layout in ("qcow2", "qcow2-luks"):
        status, _, _ = _call(server, user, secret, f"/drives/{drives[layout]}/destroy")
        assert status == 204
    removed = run_cli(config, "image", "remove", IMAGE)
    assert removed.returncode == 0, removed.stderr
    status, _, body = _call(server, user, secret, "/drives/list/standard", method="GET")
    assert IMAGE not in body.decode()
    # The raw clone never depended on the base: it still reads the image.
    status, _, body = _call(server, user, secret, f"/drives/{drives['raw']}/read/0/100000", method="GET")
    assert body == expected[:100000]
