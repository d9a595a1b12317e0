"""Standard images: the read-only library every user sees (copies into drives are jobs: model/job.py)."""
from __future__ import annotations

from dataclasses import dataclass

from elastic_api.model.ids import ALL_USERS
from elastic_api.model.properties import Info

# Conversions a client may append to /drives/DRIVE/image/SOURCE.
CONVERSIONS = ("gzip", "gunzip")
# Standard images belong to nobody: their `user` is the nil UUID.
NOBODY = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class StandardImage:
    image: str
    name: str
    size: int  # bytes of the raw image (what /gunzip writes into a drive)
    created: int


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
