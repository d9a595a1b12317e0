"""Quota parsing, the limit a change would pass, and the KEY LIMIT USED SOURCE lines."""

from __future__ import annotations

import pytest

from elastic_api.errors import UsageError
from elastic_api.model.quota import (
    DEFAULT,
    Quota,
    Usage,
    exceeded,
    human,
    parse_assignments,
    parse_mapping,
    parse_value,
    render,
)


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("drive_bytes", "10G", 10 << 30),
        ("drive_bytes", "512k", 512 << 10),
        ("drive_bytes", 4096, 4096),
        ("drives", "0", 0),
        ("servers", "12", 12),
        ("cpu", "40000", 40000),
        ("mem", 2048, 2048),
        ("ips", "3", 3),
        ("drives", "unlimited", None),
        ("cpu", " Unlimited ", None),
        ("ips", None, None),
    ],
)
def test_values(key, text, expected):
    assert parse_value(key, text) == expected


@pytest.mark.parametrize(
    "key, text",
    [
        ("drive_bytes", "10GB"),
        ("drive_bytes", "-1"),
        ("drives", "1k"),
        ("cpu", "2.5"),
        ("mem", ""),
        ("servers", True),
        ("colour", "1"),
        ("ips", "-3"),
    ],
)
def test_bad_values(key, text):
    with pytest.raises(UsageError):
        parse_value(key, text)


def test_assignments():
    assert parse_assignments(["drive_bytes=2T", "servers=unlimited", "ips=default"]) == {
        "drive_bytes": 2 << 40,
        "servers": None,
        "ips": DEFAULT,
    }
    for bad in ([], ["drives"], ["drives="], ["=3"], ["size=3"], ["drives=1", "drives=2"], ["drives=x"]):
        with pytest.raises(UsageError):
            parse_assignments(bad)


def test_mapping_rejects_nested_values():
    assert parse_mapping({"drives": 5, "mem": "unlimited"}) == {"drives": 5, "mem": None}
    with pytest.raises(UsageError, match="drives"):
        parse_mapping({"drives": [5]})


def test_overrides_replace_only_their_keys():
    base = Quota(drive_bytes=100, drives=2, servers=3, cpu=4, mem=5, ips=6)
    assert base.with_overrides({"drives": None, "ips": 0}) == Quota(100, None, 3, 4, 5, 0)


def test_exceeded_names_the_limit():
    quota = Quota(drive_bytes=10 << 30, drives=3, servers=2, cpu=4000, mem=1024, ips=1)
    usage = Usage(drive_bytes=9 << 30, drives=3, servers=1, cpu=3000, mem=512)
    assert exceeded(quota, usage, Usage(drive_bytes=3 << 30)) == "quota exceeded: drive bytes 12G of 10G"
    assert exceeded(quota, usage, Usage(drive_bytes=1 << 30)) is None  # exactly at the limit is fine
    assert exceeded(quota, usage, Usage(drives=1, drive_bytes=1)) == "quota exceeded: drives 4 of 3"
    assert exceeded(quota, usage, Usage(servers=1)) is None
    assert (
        exceeded(quota, usage, Usage(cpu=1500, mem=100)) == "quota exceeded: cpu of active servers 4500 MHz of 4000 MHz"
    )
    assert (
        exceeded(quota, usage, Usage(cpu=1000, mem=513)) == "quota exceeded: mem of active servers 1025 MB of 1024 MB"
    )
    # Already over a lowered limit: changes that add nothing to it still pass.
    assert exceeded(Quota(drives=1), usage, Usage(servers=1)) is None
    assert exceeded(Quota(drives=0), Usage(), Usage(drives=1)) == "quota exceeded: drives 1 of 0"
    assert exceeded(Quota(), usage, Usage(drives=10**6, drive_bytes=1 << 60)) is None  # unlimited


def test_human_sizes():
    assert [human("drive_bytes", v) for v in (0, 1023, 1024, 1536, 5 << 30, (5 << 40) + (1 << 39))] == [
        "0",
        "1023",
        "1k",
        "1.5k",
        "5G",
        "5.5T",
    ]
    assert human("mem", 12) == "12 MB" and human("drives", 7) == "7"


def test_render():
    lines = render(Quota(drive_bytes=1 << 30, drives=None), Usage(drive_bytes=5, drives=2), ["drives"])
    assert lines == [
        "drive_bytes 1073741824 5 default",
        "drives unlimited 2 user",
        "servers unlimited 0 default",
        "cpu unlimited 0 default",
        "mem unlimited 0 default",
        "ips unlimited 0 default",
    ]
