"""The standard image library, and each image's catalogue number."""

from __future__ import annotations

from typing import Any

from elastic_api.model.catalogue import CatalogueImage
from elastic_api.model.image import StandardImage
from elastic_api.store.postgres.engine import Conn, PostgresEngine, after_marker


class ImageRows(PostgresEngine):
    async def insert_image(self, image: StandardImage) -> None:
        async def insert(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO images (id, name, size, created) VALUES (%s, %s, %s, %s)",
                (image.image, image.name, image.size, image.created),
            )
            # The catalogue number, in the same transaction (SQLite's trigger images_numbered).
            await conn.execute("INSERT INTO image_numbers (image) VALUES (%s)", (image.image,))

        await self._write(insert)

    async def get_image(self, image: str) -> StandardImage | None:
        row = await self._one("SELECT id, name, size, created FROM images WHERE id = %s", (image,))
        return StandardImage(*row) if row else None

    async def list_images(self, limit: int | None, marker: str | None) -> list[StandardImage]:
        async def query(conn: Conn) -> list[StandardImage]:
            params: dict[str, Any] = {"limit": limit}
            found = None
            if marker is not None:
                found = await (await conn.execute("SELECT created, id FROM images WHERE id = %s", (marker,))).fetchone()
            after = after_marker(marker, (found[0], found[1]) if found else None, params, "WHERE (created, id)")
            rows = await (
                await conn.execute(
                    f"SELECT id, name, size, created FROM images {after} ORDER BY created, id LIMIT %(limit)s", params
                )
            ).fetchall()
            return [StandardImage(*row) for row in rows]

        return await self._read(query)

    async def delete_image(self, image: str) -> bool:
        return await self._execute("DELETE FROM images WHERE id = %s", (image,)) == 1

    async def numbered_images(self) -> list[CatalogueImage]:
        rows = await self._all(
            "SELECT n.number, i.id, i.name, i.size, i.created FROM image_numbers n JOIN images i ON i.id = n.image"
            " ORDER BY n.number"
        )
        return [CatalogueImage(row[0], StandardImage(*row[1:])) for row in rows]
