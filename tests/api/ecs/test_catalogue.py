"""Plans, regions, zones and images as the config and the library make them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from elastic_api.app import SERVICES
from elastic_api.config import Config, from_mapping
from elastic_api.model.image import StandardImage
from elastic_api.model.ids import new_id
from tests.api.ecs.conftest import assert_error
from tests.support import libvirt_test_host

GiB = 1024**3


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Two regions, one host each: a small host in it-fr2 (4 GB for guests) and a large one in
    ch-lug1; a plan of the operator's own, sold only in ch-lug1."""
    small = libvirt_test_host(tmp_path / "small.xml", memory_mb=8192)
    large = libvirt_test_host(tmp_path / "large.xml", memory_mb=65536)
    return from_mapping(
        {
            "data_dir": str(tmp_path / "var"),
            "default_cipher": "none",
            "hosts": [
                {"name": "small", "uri": f"test://{small}", "mem_mb": 4096, "region": "it-fr2", "zone": "az1"},
                {"name": "large", "uri": f"test://{large}", "mem_mb": 32768, "region": "ch-lug1"},
            ],
            "regions": [
                {"location": "it-fr2", "description": "Frosinone", "id": 3},
                {"location": "ch-lug1", "description": "Lugano", "id": 7},
            ],
            "plans": [
                {"name": "ECS1", "cpu": 1, "ram": 1024, "disk": 20, "hourly_price": 0.01, "monthly_price": 7.5},
                {"name": "ECS6", "cpu": 12, "ram": 24576, "disk": 400},
                {"name": "BIG1", "id": 42, "cpu": 16, "ram": 8192, "disk": 10, "regions": ["ch-lug1"], "windows": True},
            ],
        }
    )


async def test_regions(ecs_alice):
    answer = await ecs_alice.get("/regions")
    assert answer.json == {
        "status": "ok",
        "regions": [
            {"id": 3, "location": "it-fr2", "description": "Frosinone"},
            {"id": 7, "location": "ch-lug1", "description": "Lugano"},
        ],
    }


async def test_plans(ecs_alice):
    plans = (await ecs_alice.get("/plans")).json["plans"]
    assert [p["name"] for p in plans] == ["ECS1", "ECS6", "BIG1"]
    first, _, big = plans
    assert (first["id"], first["cpu"], first["ram"], first["disk"], first["gpu"]) == (1, "1", "1024", "20", "0")
    assert first["hourly_price"] == 0.01 and first["montly_price"] == 7.5 and first["windows"] is False
    assert [r["location"] for r in first["available_regions"]] == ["it-fr2", "ch-lug1"]
    assert big["id"] == 42 and big["windows"] is True
    assert big["available_regions"] == [{"id": 7, "location": "ch-lug1", "description": "Lugano"}]


async def test_plans_available_follow_the_hosts_room(ecs_alice):
    plans = {p["name"]: p for p in (await ecs_alice.get("/plans/availables")).json["plans"]}
    assert plans["ECS1"]["region_availables"] == [
        {"region": "it-fr2", "hosts": [{"host": "small", "zone": "az1", "servers": []}]},
        {"region": "ch-lug1", "hosts": [{"host": "large", "zone": "large", "servers": []}]},
    ]
    # 24 GB fit only the large host.
    assert [r["region"] for r in plans["ECS6"]["region_availables"]] == ["ch-lug1"]
    assert [r["region"] for r in plans["BIG1"]["region_availables"]] == ["ch-lug1"]
    assert (await ecs_alice.post("/regions/availables", {"plan": "ECS6"})).json == {
        "status": "ok",
        "regions": ["ch-lug1"],
    }
    assert (await ecs_alice.post("/regions/availables", {"plan": "ECS1"})).json["regions"] == ["it-fr2", "ch-lug1"]


@pytest.mark.parametrize("body", [{"plan": "NOPE"}, {}, {"plan": 1}, {"plan": "ECS1", "region": "x"}])
async def test_regions_available_for_a_bad_plan_is_400(ecs_alice, body):
    assert_error(await ecs_alice.post("/regions/availables", body), 400)


async def test_images(client, ecs_alice):
    store = client.app[SERVICES].catalogue.store
    debian, tiny = new_id(), new_id()
    await store.insert_image(StandardImage(debian, "Debian 12 (bookworm)", 3 * GiB + 1, 1_700_000_000_000_000_000))
    await store.insert_image(StandardImage(tiny, "Boot sector", 512, 1_700_000_001_000_000_000))
    images = (await ecs_alice.get("/images/basics")).json["images"]
    assert [i["name"] for i in images] == ["debian-12-bookworm", "boot-sector"]
    first = images[0]
    assert first["uuid"] == debian and first["description"] == "Debian 12 (bookworm)"
    assert (first["so_base"], first["version"], first["required_disk"]) == ("debian", "12", 4)
    assert first["status"] == "CD" and first["public"] is True and first["cloud_image"] is False
    assert first["deletion_date"] is None and first["notes"] == ""
    assert dt.datetime.fromisoformat(first["creation_date"]).utcoffset() == dt.timedelta(0)
    assert images[1]["id"] > first["id"] and images[1]["required_disk"] == 1
    # Every plan lists the images whose disk fits its own.
    plans = {p["name"]: p for p in (await ecs_alice.get("/plans/availables")).json["plans"]}
    assert [i["name"] for i in plans["ECS1"]["os_availables"]] == ["debian-12-bookworm", "boot-sector"]
    # Numbers stay when an image goes and another comes.
    await store.delete_image(debian)
    await store.insert_image(StandardImage(new_id(), "Ubuntu 24.04", GiB, 1_700_000_002_000_000_000))
    again = (await ecs_alice.get("/images/basics")).json["images"]
    assert [(i["id"], i["name"]) for i in again] == [
        (images[1]["id"], "boot-sector"),
        (images[1]["id"] + 1, "ubuntu-24-04"),
    ]
    assert again[1]["version"] == "24.04"
    paged = (await ecs_alice.get("/images/basics?limit=1")).json
    assert [i["name"] for i in paged["images"]] == ["boot-sector"] and "marker=" in paged["next"]
    assert (await ecs_alice.get("/images/cloud-images")).json == {"status": "ok", "images": []}


async def test_account(ecs_alice):
    account = (await ecs_alice.get("/account")).json
    assert account["username"] == ecs_alice.user and account["status"] == "ok"
    assert account["reserved_available"] is False and account["ecs_special_discount"] == 0
