"""The standard image library."""

from __future__ import annotations

from typing import Any

from elastic_api.model.image import StandardImage
from elastic_api.store.sqlite.engine import SqliteEngine, after_marker


class ImageRows(SqliteEngine):
    """The standard image library."""

    async def insert_image(self, image: StandardImage) -> None:
        await self._execute(
            "INSERT INTO images (id, name, size, created) VALUES (?, ?, ?, ?)",
            (image.image, image.name, image.size, image.created),
        )

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
