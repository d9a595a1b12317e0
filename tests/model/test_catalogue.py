"""Regions, zones and plans from the config; image slugs."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_api.config import Config, from_mapping
from elastic_api.errors import ConfigError
from elastic_api.model.catalogue import (
    DEFAULT_PLANS,
    DEFAULT_REGION,
    Placement,
    os_base,
    os_version,
    placements,
    slug,
)


def test_the_defaults_are_one_region_and_the_real_catalogue():
    config = Config()
    assert config.regions == () and config.plans == DEFAULT_PLANS
    assert [(p.name, p.cpu, p.ram_mb, p.disk_gb) for p in DEFAULT_PLANS] == [
        ("ECS1", 1, 1024, 20),
        ("ECS2", 2, 2048, 40),
        ("ECS3", 4, 4096, 80),
        ("ECS4", 4, 8192, 160),
        ("ECS5", 8, 16384, 320),
        ("ECS6", 12, 24576, 400),
    ]
    assert all(p.hourly_price == p.monthly_price == 0 for p in DEFAULT_PLANS)
    assert placements([("a", "", ""), ("b", "", "")], ()) == (
        Placement("a", "local", "a"),
        Placement("b", "local", "b"),
    )
    assert DEFAULT_REGION.location == "local" and DEFAULT_REGION.description == "Local"
    assert config.login_token_seconds == 4 * 3600


def _config(**extra: Any) -> Config:
    return from_mapping({"hosts": [{"name": "h", "uri": "test:///default", **extra.pop("host", {})}], **extra})


def test_hosts_take_a_region_and_a_zone():
    config = _config(
        host={"region": "ch-lug1", "zone": "z1"},
        regions=[
            {"location": "it-fr2", "description": "Frosinone", "id": 3},
            {"location": "ch-lug1", "description": "Lugano", "id": 7},
        ],
    )
    assert placements([(h.name, h.region, h.zone) for h in config.hosts], config.regions) == (
        Placement("h", "ch-lug1", "z1"),
    )
    # A host without a region is in the first one.
    config = _config(regions=[{"location": "it-fr2", "description": "Frosinone", "id": 3}])
    assert placements([("h", "", "")], config.regions)[0].region == "it-fr2"


def test_plans_from_the_config():
    config = _config(
        plans=[
            {"name": "S", "cpu": 1, "ram": 512, "disk": 10, "monthly_price": 3, "regions": []},
            {"name": "M", "id": 9, "cpu": 2, "ram": 1024, "disk": 20, "gpu": 1, "gpu_label": "T4"},
        ]
    )
    small, medium = config.plans
    assert (small.id, small.monthly_price, small.hourly_price) == (1, 3.0, 0.0)
    assert (medium.id, medium.gpu, medium.gpu_label) == (9, 1, "T4")


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"host": {"region": "nowhere"}}, "not in the regions list"),
        ({"host": {"colour": "red"}}, "unknown host key"),
        ({"regions": {}}, "list"),
        ({"plans": []}, "non-empty"),
        ({"regions": [{"location": "A B", "id": 1}]}, "location"),
        ({"regions": [{"location": "a", "id": 0}]}, "id"),
        ({"regions": [{"location": "a", "id": 1}, {"location": "a", "id": 2}]}, "unique"),
        ({"regions": [{"location": "a", "id": 1}, {"location": "b", "id": 1}]}, "unique"),
        ({"regions": [{"location": "a", "id": 1, "country": "it"}]}, "unknown region key"),
        ({"plans": [{"name": "S", "cpu": 0, "ram": 1, "disk": 1}]}, "cpu"),
        ({"plans": [{"name": "S", "cpu": "1", "ram": 1, "disk": 1}]}, "cpu"),
        ({"plans": [{"name": "S", "cpu": 1, "ram": 1, "disk": 1, "hourly_price": -1}]}, "hourly_price"),
        ({"plans": [{"name": "S", "cpu": 1, "ram": 1, "disk": 1, "windows": "yes"}]}, "windows"),
        ({"plans": [{"name": "S", "cpu": 1, "ram": 1, "disk": 1, "regions": ["nowhere"]}]}, "not in the regions"),
        (
            {"plans": [{"name": "S", "cpu": 1, "ram": 1, "disk": 1}, {"name": "S", "cpu": 1, "ram": 1, "disk": 1}]},
            "unique",
        ),
        ({"plans": [{"name": "bad name", "cpu": 1, "ram": 1, "disk": 1}]}, "plan name"),
        ({"plans": [{"name": "S", "cpu": 1, "ram": 1, "disk": 1, "size": 3}]}, "unknown plan key"),
        ({"login_token_seconds": 10}, "login_token_seconds"),
        ({"max_ssh_keys_per_user": 0}, "max_ssh_keys_per_user"),
    ],
)
def test_bad_catalogue_config(extra, message):
    with pytest.raises(ConfigError, match=message):
        _config(**extra)


@pytest.mark.parametrize(
    "name,expected,base,version",
    [
        ("Debian 12 (bookworm)", "debian-12-bookworm", "debian", "12"),
        ("Ubuntu 24.04 LTS", "ubuntu-24-04-lts", "ubuntu", "24.04"),
        ("  Boot   sector!! ", "boot-sector", "boot", ""),
        ("Windows Server 2022", "windows-server-2022", "windows", "2022"),
        ("***", "image", "image", ""),
        ("CentOS_7", "centos-7", "centos", "7"),
    ],
)
def test_slugs(name, expected, base, version):
    assert slug(name) == expected
    assert os_base(expected) == base and os_version(expected) == version
