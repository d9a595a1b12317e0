"""Sizes with k/M/G/T suffixes, powers of 1024."""

from __future__ import annotations

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.units import parse_count, parse_size


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        ("512", 512),
        ("1k", 1024),
        ("4M", 4 << 20),
        ("160G", 160 << 30),
        ("2T", 2 << 40),
        ("1K", 1024),
        ("3g", 3 << 30),
        (" 7 ", 7),
        (12, 12),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "1.5G", "-1", "1GB", "1 G", "0x10", "1e3", "99999999999T", "١٢", True, -5])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_counts():
    assert parse_count("10", "limit", minimum=1, maximum=10) == 10
    for bad in ("0", "11", "x", "", "1k", "٣"):
        with pytest.raises(UsageError):
            parse_count(bad, "limit", minimum=1, maximum=10)
