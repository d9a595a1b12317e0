"""Standard images: the read-only library every user sees (copies into drives are jobs: model/job.py)."""

from __future__ import annotations

from dataclasses import dataclass

# Conversions a client may append to /drives/DRIVE/image/SOURCE.
CONVERSIONS = ("gzip", "gunzip")
# Standard images belong to nobody: their owner is the nil UUID.
NOBODY = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class StandardImage:
    image: str
    name: str
    size: int  # bytes of the raw image (what /gunzip writes into a drive)
    created: int
