"""The catalogue: regions and zones (from the config's hosts), plans, and the standard images
numbered for catalogues, with where each plan has room right now."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from elastic_api.config import Config
from elastic_api.errors import Failed, Invalid
from elastic_api.hypervisor import Hypervisor
from elastic_api.model.catalogue import CatalogueImage, Placement, Plan, Region, placements, regions_of
from elastic_api.store.base import CatalogueStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostRoom:
    """A host with room for a plan, and the caller's servers on it (for isolation choices)."""

    host: str
    zone: str
    servers: tuple[tuple[str, str], ...] = ()  # (name, notes)


@dataclass(frozen=True)
class PlanRoom:
    plan: Plan
    images: tuple[CatalogueImage, ...]  # the images whose disk fits the plan's
    regions: tuple[tuple[str, tuple[HostRoom, ...]], ...]  # (location, hosts with room), none empty


class CatalogueService:
    def __init__(self, config: Config, store: CatalogueStore, hypervisor: Hypervisor) -> None:
        self.config = config
        self.store = store
        self.hypervisor = hypervisor
        self.regions: tuple[Region, ...] = regions_of(config.regions)
        self.placements: tuple[Placement, ...] = placements(
            [(h.name, h.region, h.zone) for h in config.hosts], config.regions
        )
        self.plans: tuple[Plan, ...] = config.plans

    def plan(self, name: str) -> Plan:
        """The plan of that name; Invalid when there is none (bad input, ECS.md §6)."""
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise Invalid(f"unknown plan: {name[:40]}")

    def plan_regions(self, plan: Plan) -> tuple[Region, ...]:
        """The regions a plan may be made in (compatible, not a promise of room)."""
        return tuple(r for r in self.regions if not plan.regions or r.location in plan.regions)

    def region(self, location: str) -> Region:
        for region in self.regions:
            if region.location == location:
                return region
        raise Invalid(f"unknown location: {location[:40]}")

    def hosts_of(self, location: str) -> tuple[str, ...]:
        return tuple(p.host for p in self.placements if p.region == location)

    async def images(self) -> list[CatalogueImage]:
        return await self.store.numbered_images()

    async def rooms(self) -> dict[str, int]:
        """Memory (MB) each reachable host can still give; a host out of reach is left out (it has
        no room anyone could use now)."""
        hosts = [p.host for p in self.placements]
        found = await asyncio.gather(*(self.hypervisor.room_mb(host) for host in hosts), return_exceptions=True)
        rooms = {}
        for host, room in zip(hosts, found, strict=True):
            if isinstance(room, Failed):
                log.info("host %s left out of the catalogue's room: %s", host, room.message)
                continue
            if isinstance(room, BaseException):
                raise room
            rooms[host] = room
        return rooms

    async def available(self) -> list[PlanRoom]:
        """Every plan with the images it fits and, per compatible region, the hosts with room for
        it now (regions without any left out). One room query per host for the whole list."""
        rooms, images = await asyncio.gather(self.rooms(), self.images())
        result = []
        for plan in self.plans:
            regions = []
            for region in self.plan_regions(plan):
                hosts = tuple(
                    HostRoom(p.host, p.zone)
                    for p in self.placements
                    if p.region == region.location and rooms.get(p.host, -1) >= plan.ram_mb
                )
                if hosts:
                    regions.append((region.location, hosts))
            fitting = tuple(image for image in images if image.required_disk_gb <= plan.disk_gb)
            result.append(PlanRoom(plan, fitting, tuple(regions)))
        return result

    async def regions_with_room(self, plan_name: str) -> list[str]:
        """The location codes where a plan could be made now."""
        plan = self.plan(plan_name)
        rooms = await self.rooms()
        return [
            region.location
            for region in self.plan_regions(plan)
            if any(rooms.get(host, -1) >= plan.ram_mb for host in self.hosts_of(region.location))
        ]
