"""Plans, regions and images: what may be made, and where there is room now."""

from __future__ import annotations

import dataclasses

from elastic_api.api.ecs import codec
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.schemas import Field, read_object

AVAILABLE_REGIONS = {"plan": Field(str, required=True)}


async def plans(call: Call) -> Wire:
    catalogue = call.services.catalogue
    return {"status": "ok", "plans": [codec.plan(p, catalogue.plan_regions(p)) for p in catalogue.plans]}


async def plans_available(call: Call) -> Wire:
    # Per host, the caller's servers on it (the panel proposes isolation from them).
    on = await call.services.ecs.by_host(call.user, call.group)
    rooms = [
        dataclasses.replace(
            room,
            regions=tuple(
                (
                    location,
                    tuple(
                        dataclasses.replace(h, servers=tuple((s.name, s.notes) for s in on.get(h.host, [])))
                        for h in hosts
                    ),
                )
                for location, hosts in room.regions
            ),
        )
        for room in await call.services.catalogue.available()
    ]
    return {"status": "ok", "plans": [codec.plan_available(room) for room in rooms]}


async def regions(call: Call) -> Wire:
    return {"status": "ok", "regions": [codec.region(r) for r in call.services.catalogue.regions]}


async def regions_available(call: Call) -> Wire:
    body = await read_object(call.request, call.config, AVAILABLE_REGIONS)
    return {"status": "ok", "regions": await call.services.catalogue.regions_with_room(body["plan"])}


async def basic_images(call: Call) -> Wire:
    images = await call.services.catalogue.images()
    return call.listing("images", images, lambda i: str(i.number), codec.image)


async def cloud_images(call: Call) -> Wire:
    # Cloud images are those a guest customises itself from (cloud-init): customisation comes
    # with the next issue, and until then the library's images are all basics, listed once.
    return call.listing("images", [], lambda i: str(i.number), codec.image)
