"""Zero detection on the guest's block grid."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from elastic_api.storage.zeros import BLOCK, Run, split, zero_runs


def test_all_zero_and_all_data_are_one_run():
    assert zero_runs(bytes(3 * BLOCK), 0) == [Run(0, 3 * BLOCK, True)]
    assert zero_runs(os.urandom(3 * BLOCK), 0) == [Run(0, 3 * BLOCK, False)]
    assert zero_runs(b"", 0) == []


def test_runs_are_coalesced_and_cut_on_the_grid():
    data = os.urandom(BLOCK) + bytes(2 * BLOCK) + os.urandom(BLOCK) + bytes(BLOCK)
    assert zero_runs(data, 0) == [
        Run(0, BLOCK, False),
        Run(BLOCK, 3 * BLOCK, True),
        Run(3 * BLOCK, 4 * BLOCK, False),
        Run(4 * BLOCK, 5 * BLOCK, True),
    ]


def test_the_grid_is_the_guests_not_the_buffers():
    # Starting 100 bytes into a block: the first piece is that block's last 3996 bytes.
    data = bytes(BLOCK - 100) + os.urandom(BLOCK) + bytes(BLOCK + 100)
    runs = zero_runs(data, 100)
    assert runs == [
        Run(0, BLOCK - 100, True),
        Run(BLOCK - 100, 2 * BLOCK - 100, False),
        Run(2 * BLOCK - 100, len(data), True),
    ]
    # The same bytes on the buffer's own grid would blur: a block mixing data and zeros is data.
    assert zero_runs(data, 0)[0] == Run(0, 2 * BLOCK, False)


def test_one_nonzero_byte_makes_its_block_data():
    data = bytearray(4 * BLOCK)
    data[2 * BLOCK + 7] = 1
    assert zero_runs(bytes(data), 0) == [
        Run(0, 2 * BLOCK, True),
        Run(2 * BLOCK, 3 * BLOCK, False),
        Run(3 * BLOCK, 4 * BLOCK, True),
    ]


def test_partial_tail_block():
    assert zero_runs(os.urandom(BLOCK) + bytes(10), 0) == [Run(0, BLOCK, False), Run(BLOCK, BLOCK + 10, True)]
    assert zero_runs(b"\0\0\1", 5) == [Run(0, 3, False)]


def test_split():
    assert list(split(0, 10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(split(5, 5, 4)) == []


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3 * BLOCK)), max_size=8), st.integers(0, 3 * BLOCK))
def test_runs_tile_the_buffer_and_zero_runs_are_zero(pieces, position):
    data = b"".join(bytes(n) if zero else b"\1" * n for zero, n in pieces)
    runs = zero_runs(data, position)
    assert [r.start for r in runs[1:]] == [r.end for r in runs[:-1]]  # contiguous
    assert (runs[0].start, runs[-1].end) == (0, len(data)) if data else runs == []
    assert all(a.zero != b.zero for a, b in zip(runs, runs[1:]))  # coalesced
    for run in runs:
        # Every cut is on the guest's grid (or an end of the buffer).
        assert run.start == 0 or (position + run.start) % BLOCK == 0
        if run.zero:
            assert data[run.start : run.end] == bytes(run.length)
        else:  # each grid piece of a data run holds a non-zero byte
            cut = run.start
            while cut < run.end:
                end = min(run.end, cut + BLOCK - (position + cut) % BLOCK)
                assert any(data[cut:end])
                cut = end
