"""The standard image library, and the image jobs queued on drives."""
from __future__ import annotations

import sqlite3
from typing import Any

from elastic_api.model.image import ImageJob, StandardImage
from elastic_api.store.sqlite.engine import SqliteEngine, after_marker


class ImageRows(SqliteEngine):
    """The standard image library, and image jobs (queued in order per drive)."""

    async def insert_image(self, image: StandardImage) -> None:
        await self._execute("INSERT INTO images (id, name, size, created) VALUES (?, ?, ?, ?)",
                            (image.image, image.name, image.size, image.created))

    def _get_image(self, image: str) -> StandardImage | None:
        row = self.db.execute("SELECT id, name, size, created FROM images WHERE id = ?", (image,)).fetchone()
        return StandardImage(*row) if row else None

    async def get_image(self, image: str) -> StandardImage | None:
        return await self._run(self._get_image, image)

    async def list_images(self, limit: int | None, marker: str | None) -> list[StandardImage]:
        def query() -> list[StandardImage]:
            params: dict[str, Any] = {"limit": -1 if limit is None else limit}
            found = self._get_image(marker) if marker else None
            after = after_marker(marker, (found.created, found.image) if found else None, params, "WHERE (created, id)")
            rows = self.db.execute(
                f"SELECT id, name, size, created FROM images {after} ORDER BY created, id LIMIT :limit", params
            ).fetchall()
            return [StandardImage(*row) for row in rows]

        return await self._run(query)

    async def delete_image(self, image: str) -> bool:
        return await self._execute("DELETE FROM images WHERE id = ?", (image,)) == 1

    # -- image jobs ---------------------------------------------------------------------------
    async def add_image_job(self, user: str, drive: str, source: str, conversion: str) -> ImageJob | None:
        def add(db: sqlite3.Connection) -> ImageJob | None:
            cursor = db.execute(
                "INSERT INTO image_jobs (drive, owner, source, conversion)"
                " SELECT :drive, :user, :source, :conversion"
                " WHERE EXISTS (SELECT 1 FROM drives WHERE id = :drive AND owner = :user)",
                {"drive": drive, "user": user, "source": source, "conversion": conversion},
            )
            if cursor.rowcount != 1:
                return None
            # A new job is queued until the runner reports progress; a failure's mark is cleared.
            db.execute("UPDATE drives SET imaging = coalesce(imaging, 'queued'), imaging_error = NULL"
                       " WHERE id = ?", (drive,))
            return ImageJob(int(cursor.lastrowid or 0), drive, user, source, conversion)

        return await self._write(add)

    async def image_jobs(self, user: str, drive: str) -> list[ImageJob]:
        rows = await self._run(lambda: self.db.execute(
            "SELECT id, drive, owner, source, conversion FROM image_jobs WHERE drive = ? AND owner = ?"
            " ORDER BY id", (drive, user)).fetchall())
        return [ImageJob(*row) for row in rows]

    async def finish_image_job(self, user: str, job: int, imaging: str | None, error: str | None) -> None:
        def finish(db: sqlite3.Connection) -> None:
            row = db.execute("DELETE FROM image_jobs WHERE id = ? AND owner = ? RETURNING drive",
                             (job, user)).fetchone()
            if row:
                db.execute("UPDATE drives SET imaging = ?, imaging_error = ? WHERE id = ? AND owner = ?",
                           (imaging, error, row[0], user))

        await self._write(finish)

    async def all_image_jobs(self) -> list[ImageJob]:
        rows = await self._run(lambda: self.db.execute(
            "SELECT id, drive, owner, source, conversion FROM image_jobs ORDER BY id").fetchall())
        return [ImageJob(*row) for row in rows]
