"""Files made once: the first of several makers wins, the others read its file; nothing is left over."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from elastic_api.once import create_once
from elastic_api.service.keyring import Keyring


def test_the_first_maker_wins_and_the_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    assert create_once(path, b"one", 0o600)
    assert not create_once(path, b"two", 0o600)
    assert path.read_bytes() == b"one" and os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f"]  # no temporary left


def test_makers_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "f"
    made: list[bool] = []
    threads = [threading.Thread(target=lambda n=n: made.append(create_once(path, b"%d" % n, 0o600))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made.count(True) == 1 and len(made) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_servers_starting_at_once_share_one_master_key(tmp_path: Path) -> None:
    """Each used to write the same temporary name: one of two first starts could fail."""
    path = tmp_path / "master.key"
    rings = [Keyring(path, may_create=True) for _ in range(8)]
    errors: list[BaseException] = []

    def start(ring: Keyring) -> None:
        try:
            asyncio.run(ring.open(None))
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(ring,)) for ring in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    wrapped = rings[0].new_wrapped_key("3d5f0f4e-1f0b-4b8e-a7c4-6a1b2c3d4e5f")
    assert {ring.passphrase("3d5f0f4e-1f0b-4b8e-a7c4-6a1b2c3d4e5f", wrapped) for ring in rings} == {
        rings[0].passphrase("3d5f0f4e-1f0b-4b8e-a7c4-6a1b2c3d4e5f", wrapped)
    }
