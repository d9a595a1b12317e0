"""Imaging: copies from a drive or standard image into a drive, run as jobs (service/jobs.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from elastic_api.config import Config
from elastic_api.errors import BusyError, ElasticError, MissingError, UsageError
from elastic_api.model.ids import parse_id
from elastic_api.model.image import CONVERSIONS, StandardImage
from elastic_api.model.job import IMAGE, ImageParams, Job
from elastic_api.model.pages import Page
from elastic_api.service.drives import DriveService
from elastic_api.service.jobs import JobFailed, JobRunner, Progress
from elastic_api.storage import BaseFile, ImageFile, Storage, Volume
from elastic_api.store import Store

log = logging.getLogger(__name__)


class ImagingService:
    def __init__(
        self, config: Config, store: Store, storage: Storage, drives: DriveService, jobs: JobRunner | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.storage = storage
        self.drives = drives
        self.jobs = jobs or drives.jobs
        # Copies are disk- and CPU-heavy: a few at once keep the API responsive. A copy rewrites
        # its whole target, so one a crash or stop cut short simply runs again from the start.
        self.jobs.register(IMAGE, self._copy, concurrency=config.max_image_jobs, idempotent=True)

    # -- the standard library -----------------------------------------------------------------
    async def standard(self, page: Page) -> list[StandardImage]:
        return await self.store.list_images(page.limit, page.marker)

    async def add_standard(self, image_id: str, name: str, path: Path) -> StandardImage:
        image = parse_id(image_id)
        if image is None:
            raise UsageError(f"not a UUID: {image_id[:40]}")
        if not name.strip():
            raise UsageError("a standard image needs a name")
        if await self.store.get_image(image) is not None:
            raise UsageError(f"standard image {image} already exists")
        stored = await self.storage.import_image(image, path)
        record = StandardImage(image, name.strip(), stored.size, time.time_ns())
        await self.store.insert_image(record)
        return record

    async def remove_standard(self, image_id: str) -> StandardImage:
        """Remove a standard image: refused (BusyError) while a drive is a clone of it, since
        its base holds the bytes the clone has not written. The row goes first, so no new job
        finds the image; a clone made meanwhile shows when the files go, and the row comes back."""
        image = parse_id(image_id)
        record = await self.store.get_image(image) if image else None
        if record is None:
            raise MissingError(f"no such standard image: {image_id[:40]}")
        users = await self.storage.image_users(record.image)
        if users:
            raise BusyError(f"standard image {record.image} is in use by {len(users)} drive(s): {' '.join(users[:10])}")
        await self.store.delete_image(record.image)
        try:
            await self.storage.remove_image(record.image)
        except BaseException:
            await self.store.insert_image(record)
            raise
        return record

    # -- jobs -----------------------------------------------------------------------------------
    async def image(self, user: str, drive_id: str, source_id: str, conversion: str) -> Job:
        """Queue a copy of SOURCE into DRIVE, behind the drive's other jobs; it runs in the
        background."""
        if conversion and conversion not in CONVERSIONS:
            raise MissingError(f"no such command: image/{source_id[:40]}/{conversion[:20]}")
        target = await self.drives.owned(user, drive_id)
        self.drives.check_unclaimed(target)  # a queued second image is fine, a running server is not
        source = parse_id(source_id)
        if source is None:
            raise MissingError(f"no such drive: {source_id[:40]}")
        if source == target.drive:
            raise UsageError("a drive cannot be imaged from itself")
        if await self.store.get_image(source) is None and await self.store.template_by_uuid(user, source) is None:
            await self.drives.get(user, source)  # 404 unless the user may read it (or it is their template)
        return await self.jobs.submit(Job(0, IMAGE, user, target.drive, ImageParams(source, conversion)))

    async def _source(self, owner: str, source: str) -> Volume | ImageFile | BaseFile:
        image = await self.store.get_image(source)
        if image is not None:
            return await self.storage.image_file(image.image)
        template = await self.store.template_by_uuid(owner, source)
        if template is not None:  # a user's template (service/templates.py): its base
            return BaseFile(template.uuid, template.size)
        return self.drives.volume(await self.drives.get(owner, source))

    async def _copy(self, job: Job, progress: Progress) -> None:
        """Run one image job; JobFailed with the words its drive shows when it fails."""
        params = job.params
        assert isinstance(params, ImageParams)
        use = self.drives.use
        try:
            await use.drained(job.resource)  # writes that started before the job finish first
            target = await self.drives.owned(job.owner, job.resource)
            source = await self._source(job.owner, params.source)

            def copied(done: int, total: int) -> None:
                progress(min(99, done * 100 // max(total, 1)))  # 100% is the job done, not the last byte

            with use.io(params.source):
                await self.storage.copy(source, self.drives.volume(target), params.conversion, copied)
            log.info("imaged drive %s from %s", job.resource, params.source)
        except ElasticError as e:
            raise JobFailed(f"image from {params.source} failed: {e.message}") from None
        except Exception:
            log.exception("image job %d into %s failed", job.id, job.resource)
            raise JobFailed(f"image from {params.source} failed: internal error") from None
