"""Zero detection on the guest's block grid."""
from __future__ import annotations

import os

from elastic_api.storage.zeros import BLOCK, Run, split, zero_runs


def test_all_zero_and_all_data_are_one_run():
    assert zero_runs(bytes(3 * BLOCK), 0) == [Run(0, 3 * BLOCK, True)]
    assert zero_runs(os.urandom(3 * BLOCK), 0) == [Run(0, 3 * BLOCK, False)]
    assert zero_runs(b"", 0) == []


def test_runs_are_coalesced_and_cut_on_the_grid():
    data = os.urandom(BLOCK) + bytes(2 * BLOCK) + os.urandom(BLOCK) + bytes(BLOCK)
    assert zero_runs(data, 0) == [Run(0, BLOCK, False), Run(BLOCK, 3 * BLOCK, True),
                                  Run(3 * BLOCK, 4 * BLOCK, False), Run(4 * BLOCK, 5 * BLOCK, True)]


def test_the_grid_is_the_guests_not_the_buffers():
    # Starting 100 bytes into a block: the first piece is that block's last 3996 bytes.
    data = bytes(BLOCK - 100) + os.urandom(BLOCK) + bytes(BLOCK + 100)
    runs = zero_runs(data, 100)
    assert runs == [Run(0, BLOCK - 100, True), Run(BLOCK - 100, 2 * BLOCK - 100, False),
                    Run(2 * BLOCK - 100, len(data), True)]
    # The same bytes on the buffer's own grid would blur: a block mixing data and zeros is data.
    assert zero_runs(data, 0)[0] == Run(0, 2 * BLOCK, False)


def test_one_nonzero_byte_makes_its_block_data():
    data = bytearray(4 * BLOCK)
    data[2 * BLOCK + 7] = 1
    assert zero_runs(bytes(data), 0) == [Run(0, 2 * BLOCK, True), Run(2 * BLOCK, 3 * BLOCK, False),
                                         Run(3 * BLOCK, 4 * BLOCK, True)]


def test_partial_tail_block():
    assert zero_runs(os.urandom(BLOCK) + bytes(10), 0) == [Run(0, BLOCK, False), Run(BLOCK, BLOCK + 10, True)]
    assert zero_runs(b"\0\0\1", 5) == [Run(0, 3, False)]


def test_split():
    assert list(split(0, 10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(split(5, 5, 4)) == []
