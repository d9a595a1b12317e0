"""Metadata store: narrow interfaces, one per concept (store/base.py), whose every object query
takes the user it acts for; `Store` is all of them, and store/sqlite/ the implementation."""
from __future__ import annotations

from elastic_api.store.base import (
    DriveStore,
    ImageJobStore,
    ImageStore,
    LeaseStore,
    QuotaStore,
    ResourceStore,
    ServerStore,
    Store,
    UserStore,
)

__all__ = ["DriveStore", "ImageJobStore", "ImageStore", "LeaseStore", "QuotaStore", "ResourceStore",
           "ServerStore", "Store", "UserStore"]
