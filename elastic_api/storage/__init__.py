"""Drive bytes: volumes in a pool directory, raw or qcow2 (plain or with LUKS inside), streamed
through a bounded gzip decoder. The interface is in base.py, the pool behind it in pool.py."""

from __future__ import annotations

from elastic_api.storage.base import FORMATS, BaseFile, Conversion, Format, ImageFile, Progress, Storage, Volume
from elastic_api.storage.pool import Pool

__all__ = ["FORMATS", "BaseFile", "Conversion", "Format", "ImageFile", "Pool", "Progress", "Storage", "Volume"]
