"""Imaging: background copies from a drive or standard image into a drive, queued per drive."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from elastic_api.config import Config
from elastic_api.errors import ElasticError, MissingError, UsageError
from elastic_api.model.ids import parse_id
from elastic_api.model.image import CONVERSIONS, ImageJob, StandardImage
from elastic_api.model.pages import Page
from elastic_api.service.drives import DriveService
from elastic_api.storage import ImageFile, Storage, Volume
from elastic_api.store import Store

log = logging.getLogger(__name__)


class ImagingService:
    def __init__(self, config: Config, store: Store, storage: Storage, drives: DriveService) -> None:
        self.config = config
        self.store = store
        self.storage = storage
        self.drives = drives
        self._runners: dict[str, asyncio.Task[None]] = {}
        # Copies are disk- and CPU-heavy; a few at once keep the API responsive.
        self._slots = asyncio.Semaphore(config.max_image_jobs)

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

    # -- jobs -----------------------------------------------------------------------------------
    async def image(self, user: str, drive_id: str, source_id: str, conversion: str) -> None:
        """Queue a copy of SOURCE into DRIVE; it runs in the background (204 to the client)."""
        if conversion and conversion not in CONVERSIONS:
            raise MissingError(f"no such command: image/{source_id[:40]}/{conversion[:20]}")
        target = await self.drives.owned(user, drive_id)
        self.drives.check_unclaimed(target)  # a queued second image is fine, a running server is not
        source = parse_id(source_id)
        if source is None:
            raise MissingError(f"no such drive: {source_id[:40]}")
        if source == target.drive:
            raise UsageError("a drive cannot be imaged from itself")
        if await self.store.get_image(source) is None:
            await self.drives.get(user, source)  # 404 unless the user may read it
        job = await self.store.add_image_job(user, target.drive, source, conversion)
        if job is None:
            raise MissingError(f"no such drive: {drive_id[:40]}")
        self._kick(user, target.drive)

    def _kick(self, owner: str, drive: str) -> None:
        if drive not in self._runners:
            task = asyncio.create_task(self._run_queue(owner, drive), name=f"imaging {drive}")
            self._runners[drive] = task
            task.add_done_callback(lambda _: self._runners.pop(drive, None))

    async def _run_queue(self, owner: str, drive: str) -> None:
        while jobs := await self.store.image_jobs(owner, drive):
            error = await self._run(jobs[0])
            await self.store.finish_image_job(owner, jobs[0].job, "queued" if len(jobs) > 1 else None, error)

    async def _source(self, job: ImageJob) -> Volume | ImageFile:
        image = await self.store.get_image(job.source)
        if image is not None:
            return await self.storage.image_file(image.image)
        return self.drives.volume(await self.drives.get(job.owner, job.source))

    async def _run(self, job: ImageJob) -> str | None:
        """Copy one job; the error message when it failed, None when it succeeded."""
        use = self.drives.use
        async with self._slots:
            use.imaging[job.drive] = "0%"
            use.image_sources[job.drive] = job.source
            try:
                await use.drained(job.drive)  # writes that started before the job finish first
                target = await self.drives.owned(job.owner, job.drive)
                source = await self._source(job)

                def progress(done: int, total: int) -> None:
                    use.imaging[job.drive] = f"{min(99, done * 100 // max(total, 1))}%"

                async with use.io(job.source):
                    await self.storage.copy(source, self.drives.volume(target), job.conversion, progress)
                log.info("imaged drive %s from %s", job.drive, job.source)
                return None
            except ElasticError as e:
                log.warning("image job %d into %s failed: %s", job.job, job.drive, e.message)
                return f"image from {job.source} failed: {e.message}"
            except Exception:
                log.exception("image job %d into %s failed", job.job, job.drive)
                return f"image from {job.source} failed: internal error"
            finally:
                use.imaging.pop(job.drive, None)
                use.image_sources.pop(job.drive, None)

    async def resume(self) -> None:
        """At start-up: jobs a stop or crash interrupted run again from the beginning (a copy
        rewrites the whole target, so a rerun is exact)."""
        for job in await self.store.all_image_jobs():
            self._kick(job.owner, job.drive)

    async def close(self) -> None:
        for task in list(self._runners.values()):
            task.cancel()
        await asyncio.gather(*self._runners.values(), return_exceptions=True)

