"""ElasticHosts info of a standard image: a shared, read-only gzip drive of nobody's, readable by all."""

from __future__ import annotations

from elastic_api.api.elastichosts.properties import Info
from elastic_api.model.ids import ALL_USERS
from elastic_api.model.image import NOBODY, StandardImage


def to_info(image: StandardImage) -> Info:
    return {
        "drive": image.image,
        "name": image.name,
        "size": image.size,
        "user": NOBODY,
        "status": "active",
        "claimed": [],
        "claim:type": "shared",
        "readers": [ALL_USERS],
        "tags": ["standard"],
        "encryption:cipher": "none",
        "format": "gzip",
    }
