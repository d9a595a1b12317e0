"""What a cloud offers before anything is made: regions and their zones (groups of hosts), plans
(server sizes with prices), and the standard images as a catalogue sees them. Pure values, parsed
from the operator's config here; no dialect's wire names."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elastic_api.errors import ConfigError
from elastic_api.model.image import StandardImage

GiB = 1024**3
# A location code: what clients send as `location` and see in region lists.
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# A plan name: `ECS1`, `eCS1W`, `ECS1GPU`…; letters, digits, `-`, `_`.
_PLAN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Region:
    """A named group of hosts (Huawei's region, Seeweb's location)."""

    id: int  # stable: clients keep it
    location: str  # the code clients name it by
    description: str


# Without a `regions:` list every host is in this one region.
DEFAULT_REGION = Region(1, "local", "Local")


@dataclass(frozen=True)
class Plan:
    """A server size with its prices. Sizes are what the engine gives a server: `cpu` cores
    (smp; MHz = cores x host_core_mhz), `ram_mb` of memory and a `disk_gb` boot drive."""

    id: int
    name: str
    cpu: int
    ram_mb: int
    disk_gb: int
    gpu: int = 0
    gpu_label: str | None = None
    hourly_price: float = 0.0
    monthly_price: float = 0.0
    windows: bool = False
    host_type: str = "ECS"
    available: bool = True
    default_image: str | None = None
    regions: tuple[str, ...] = ()  # location codes; empty = every region


def _plan(id_: int, name: str, cpu: int, ram_mb: int, disk_gb: int) -> Plan:
    return Plan(id=id_, name=name, cpu=cpu, ram_mb=ram_mb, disk_gb=disk_gb)


# The real catalogue's six sizes (ECS.md §4, 2025 fixture), free unless the operator prices them.
DEFAULT_PLANS: tuple[Plan, ...] = (
    _plan(1, "ECS1", 1, 1024, 20),
    _plan(2, "ECS2", 2, 2048, 40),
    _plan(3, "ECS3", 4, 4096, 80),
    _plan(4, "ECS4", 4, 8192, 160),
    _plan(5, "ECS5", 8, 16384, 320),
    _plan(6, "ECS6", 12, 24576, 400),
)


@dataclass(frozen=True)
class Placement:
    """Where one host sits: its region's location code and its zone (an availability zone)."""

    host: str
    region: str
    zone: str


def regions_of(configured: Sequence[Region]) -> tuple[Region, ...]:
    return tuple(configured) or (DEFAULT_REGION,)


def placements(hosts: Sequence[tuple[str, str, str]], configured: Sequence[Region]) -> tuple[Placement, ...]:
    """Each (host, region, zone) with the defaults filled: no region = the first region, no zone
    = a zone of its own named after the host. ConfigError for a region not in the list."""
    regions = regions_of(configured)
    known = {region.location for region in regions}
    found = []
    for host, region, zone in hosts:
        code = region or regions[0].location
        if code not in known:
            raise ConfigError(f"host {host}: region {code!r} is not in the regions list")
        found.append(Placement(host, code, zone or host))
    return tuple(found)


# -- config parsing -----------------------------------------------------------------------------
def parse_regions(value: Any) -> tuple[Region, ...]:
    """The `regions:` list: [{location, description, id}], codes and ids unique; an empty list
    is the default single region."""
    if not isinstance(value, list):
        raise ConfigError("regions must be a list of {location, description, id}")
    regions = []
    for item in value:
        if not isinstance(item, dict):
            raise ConfigError(f"each region is a mapping of location, description, id: {item!r}")
        unknown = set(item) - {"location", "description", "id"}
        if unknown:
            raise ConfigError(f"unknown region key: {sorted(unknown)[0]}")
        location, id_ = str(item.get("location", "")), item.get("id")
        if not _CODE.match(location):
            raise ConfigError(f"region location must be 1 to 32 of a-z, 0-9 and '-': {location!r}")
        if isinstance(id_, bool) or not isinstance(id_, int) or id_ < 1:
            raise ConfigError(f"region {location}: id must be a whole number of at least 1 (clients keep it)")
        regions.append(Region(id_, location, str(item.get("description", location))))
    if len({r.location for r in regions}) != len(regions) or len({r.id for r in regions}) != len(regions):
        raise ConfigError("region locations and ids must be unique")
    return tuple(regions)


_PLAN_KEYS = {
    "id",
    "name",
    "cpu",
    "ram",
    "disk",
    "gpu",
    "gpu_label",
    "hourly_price",
    "monthly_price",
    "windows",
    "host_type",
    "available",
    "default_image",
    "regions",
}


def parse_plans(value: Any) -> tuple[Plan, ...]:
    """The `plans:` list; it replaces the default catalogue whole."""
    if not isinstance(value, list) or not value:
        raise ConfigError("plans must be a non-empty list of {name, cpu, ram, disk, ...}")
    plans = [_parse_plan(item, index) for index, item in enumerate(value, 1)]
    if len({p.name for p in plans}) != len(plans) or len({p.id for p in plans}) != len(plans):
        raise ConfigError("plan names and ids must be unique")
    return tuple(plans)


def _parse_plan(item: Any, index: int) -> Plan:
    if not isinstance(item, dict):
        raise ConfigError(f"each plan is a mapping: {item!r}")
    unknown = set(item) - _PLAN_KEYS
    if unknown:
        raise ConfigError(f"unknown plan key: {sorted(unknown)[0]}")
    name = str(item.get("name", ""))
    if not _PLAN.match(name):
        raise ConfigError(f"plan name must be 1 to 32 letters, digits, '-' or '_': {name!r}")

    def whole(key: str, minimum: int, default: int | None = None) -> int:
        raw = item.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
            raise ConfigError(f"plan {name}: {key} must be a whole number of at least {minimum}")
        return raw

    def price(key: str) -> float:
        raw = item.get(key, 0)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or not math.isfinite(raw):
            raise ConfigError(f"plan {name}: {key} must be a number of 0 or more")
        return float(raw)

    def flag(key: str, default: bool) -> bool:
        raw = item.get(key, default)
        if not isinstance(raw, bool):
            raise ConfigError(f"plan {name}: {key} must be true or false")
        return raw

    regions = item.get("regions", [])
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise ConfigError(f"plan {name}: regions must be a list of location codes")
    label, image = item.get("gpu_label"), item.get("default_image")
    return Plan(
        id=whole("id", 1, index),
        name=name,
        cpu=whole("cpu", 1),
        ram_mb=whole("ram", 1),
        disk_gb=whole("disk", 1),
        gpu=whole("gpu", 0, 0),
        gpu_label=None if label is None else str(label),
        hourly_price=price("hourly_price"),
        monthly_price=price("monthly_price"),
        windows=flag("windows", False),
        host_type=str(item.get("host_type", "ECS")),
        available=flag("available", True),
        default_image=None if image is None else str(image),
        regions=tuple(regions),
    )


def check_plan_regions(plans: Sequence[Plan], regions: Sequence[Region]) -> None:
    known = {region.location for region in regions_of(regions)}
    for plan in plans:
        for code in plan.regions:
            if code not in known:
                raise ConfigError(f"plan {plan.name}: region {code!r} is not in the regions list")


# -- images ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogueImage:
    """A standard image with the stable number catalogues list it by."""

    number: int
    image: StandardImage

    @property
    def slug(self) -> str:
        return slug(self.image.name)

    @property
    def required_disk_gb(self) -> int:
        return max(1, math.ceil(self.image.size / GiB))


def slug(name: str) -> str:
    """`"Debian 12 (bookworm)"` → `debian-12-bookworm`: lowercase, runs of anything else than
    letters and digits become one `-`, none at either end."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "image"


def os_base(slug_: str) -> str:
    """The family an image slug names: its first word (`debian-12` → `debian`)."""
    return slug_.split("-", 1)[0]


def os_version(slug_: str) -> str:
    """The version an image slug names: its first run of number words, joined by dots
    (`ubuntu-24-04` → `24.04`, `debian-12-bookworm` → `12`), or ""."""
    words, run = slug_.split("-")[1:], []
    for word in words:
        if word.isdigit():
            run.append(word)
        elif run:
            break
    return ".".join(run)
