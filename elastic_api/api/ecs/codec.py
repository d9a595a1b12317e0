"""Typed values → the ECS wire objects of ECS.md §4. Pure functions. Sizes are digit strings,
ids and counts JSON numbers, times RFC 3339 with an offset, "no value" null (never "")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from elastic_api.model.catalogue import CatalogueImage, Plan, Region, os_base, os_version
from elastic_api.model.cloudscript import CloudScript
from elastic_api.model.group import Group
from elastic_api.model.sshkey import SshKey
from elastic_api.service.catalogue import PlanRoom

# The version of the platform objects were made on (`api_version`, `api_version_value`): ecsapi
# requires both, the real service shows v4 and v5 and nothing depends on the value.
API_VERSION = ("v4", 4)

Wire = dict[str, Any]


def timestamp(ns: int) -> str:
    """`2025-02-20T13:00:16.543255+00:00`: what the real service sends, and what Go can parse."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()


def region(r: Region) -> Wire:
    return {"id": r.id, "location": r.location, "description": r.description}


def _plan_fields(plan: Plan) -> Wire:
    return {
        "id": plan.id,
        "name": plan.name,
        "cpu": str(plan.cpu),
        "ram": str(plan.ram_mb),
        "disk": str(plan.disk_gb),
        "gpu": str(plan.gpu),
        "gpu_label": plan.gpu_label,
        "hourly_price": plan.hourly_price,
        # sic: the wire's spelling, the only one ecsapi reads; the right one too, for readers.
        "montly_price": plan.monthly_price,
        "monthly_price": plan.monthly_price,
        "windows": plan.windows,
        "host_type": plan.host_type,
        "available": plan.available,
        "default_image": plan.default_image,
    }


def plan(p: Plan, regions: tuple[Region, ...]) -> Wire:
    return {**_plan_fields(p), "available_regions": [region(r) for r in regions]}


def plan_available(room: PlanRoom) -> Wire:
    return {
        **_plan_fields(room.plan),
        "os_availables": [image(i) for i in room.images],
        "region_availables": [
            {
                "region": location,
                "hosts": [
                    {
                        "host": h.host,
                        "zone": h.zone,
                        "servers": [{"name": name, "notes": notes} for name, notes in h.servers],
                    }
                    for h in hosts
                ],
            }
            for location, hosts in room.regions
        ],
        "runtimeclass": None,
    }


def image(i: CatalogueImage) -> Wire:
    slug = i.slug
    return {
        "id": i.number,
        "name": slug,
        "uuid": i.image.image,
        "description": i.image.name,
        "notes": "",
        "creation_date": timestamp(i.image.created),
        "deletion_date": None,
        "active_flag": True,
        "status": "CD",
        "public": True,
        "cloud_image": False,
        "so_base": os_base(slug),
        "required_disk": i.required_disk_gb,
        "api_version": API_VERSION[0],
        "api_version_value": API_VERSION[1],
        "version": os_version(slug),
    }


def ssh_key(k: SshKey) -> Wire:
    return {"id": k.id, "key": k.key, "label": k.label, "created_at": timestamp(k.created)}


def group(g: Group) -> Wire:
    # The password hash stays in the store: never sent, not even to its owner.
    return {"id": g.id, "name": g.name, "notes": g.notes, "enabled": g.enabled, "creation_date": timestamp(g.created)}


def cloud_script(s: CloudScript) -> Wire:
    # `user` must be present (ecsapi requires the key); no script here is public or filed under
    # a category: the library is the user's own.
    return {
        "id": s.id,
        "user": s.owner,
        "title": s.title,
        "content": s.content,
        "windows": s.windows,
        "public": False,
        "category": None,
        "created_at": timestamp(s.created),
    }
