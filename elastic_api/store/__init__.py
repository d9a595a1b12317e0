"""Metadata store: narrow interfaces, one per concept (store/base.py), whose every object query
takes the user it acts for; `Store` is all of them, and store/sqlite/ the implementation."""

from __future__ import annotations

from elastic_api.store.base import (
    CatalogueStore,
    DriveStore,
    GroupStore,
    ImageStore,
    JobStore,
    LeaseStore,
    MetricsStore,
    QuotaStore,
    ResourceStore,
    ServerStore,
    SshKeyStore,
    Store,
    TokenStore,
    UserStore,
)

__all__ = [
    "CatalogueStore",
    "DriveStore",
    "GroupStore",
    "ImageStore",
    "JobStore",
    "LeaseStore",
    "MetricsStore",
    "QuotaStore",
    "ResourceStore",
    "ServerStore",
    "SshKeyStore",
    "Store",
    "TokenStore",
    "UserStore",
]
