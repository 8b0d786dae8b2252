"""Where images were found (mixed into `Catalog`): the places table, one row a file or archive
member, and the containers table, one row an archive read so far, with how that went."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator

from .records import Place


class CatalogPlaces:
    """Recording, moving and forgetting places and archives in `self.conn`, as the indexing
    pipeline and its pruning go; reading them back with their images is Catalog.images."""

    # -- places ------------------------------------------------------------------------------------

    def place_state(self, source: str, member: str = "") -> tuple[int, int, int, str] | None:
        """(image_id, file_size, file_mtime_ns, image status) recorded for a place, or None."""
        return self.conn.execute(
            "SELECT p.image_id, p.file_size, p.file_mtime_ns, i.status "
            "FROM places p JOIN images i ON i.id = p.image_id WHERE p.source = ? AND p.member = ?",
            (source, member),
        ).fetchone()

    def put_place(
        self, image_id: int, place: Place, file_size: int | None, file_mtime_ns: int | None
    ) -> None:
        """Record (or move) a place to point at `image_id`, with what it says about the image."""
        now = time.time()
        self.conn.execute(
            "INSERT INTO places (image_id, source, member, page_url, title, author, licence, tags,"
            " file_size, file_mtime_ns, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (source, member) DO UPDATE SET image_id = excluded.image_id,"
            " page_url = COALESCE(excluded.page_url, page_url),"
            " title = COALESCE(excluded.title, title),"
            " author = COALESCE(excluded.author, author),"
            " licence = COALESCE(excluded.licence, licence),"
            " tags = COALESCE(excluded.tags, tags),"
            " file_size = excluded.file_size, file_mtime_ns = excluded.file_mtime_ns,"
            " last_seen = excluded.last_seen",
            (
                image_id,
                place.source,
                place.member,
                place.page_url,
                place.title,
                place.author,
                place.licence,
                json.dumps(list(place.tags)) if place.tags else None,
                file_size,
                file_mtime_ns,
                now,
                now,
            ),
        )

    def delete_tile_places(self, source: str, member: str) -> None:
        """Forget the sprite places of the sheet at (source, member) (see pictures/tiles.py)."""
        prefix = member + "#tile="
        self.conn.execute(
            "DELETE FROM places WHERE source = ? AND substr(member, 1, ?) = ?",
            (source, len(prefix), prefix),
        )

    def delete_places(self, place_ids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM places WHERE id = ?", [(int(i),) for i in place_ids])

    def orphan_ids(self) -> list[int]:
        """Images no place points at any more (their file changed or vanished)."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM images WHERE NOT EXISTS"
                " (SELECT 1 FROM places p WHERE p.image_id = images.id)"
            )
        ]

    def file_places_under(self, root: str) -> Iterator[tuple[int, str]]:
        """(place id, source) of every plain-file place whose path lies under folder `root`."""
        prefix = root.rstrip("/") + "/"
        yield from self.conn.execute(
            "SELECT id, source FROM places WHERE (source = ? OR substr(source, 1, ?) = ?)",
            (root, len(prefix), prefix),
        )

    # -- archives ------------------------------------------------------------------------------

    def container_state(self, source: str) -> tuple[int | None, int | None, str] | None:
        """(file_size, file_mtime_ns, status) recorded for an archive, or None."""
        return self.conn.execute(
            "SELECT file_size, file_mtime_ns, status FROM containers WHERE source = ?", (source,)
        ).fetchone()

    def put_container(
        self,
        source: str,
        file_size: int | None,
        file_mtime_ns: int | None,
        *,
        status: str,
        members: int,
        error: str | None,
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO containers (source, file_size, file_mtime_ns, status, members,"
            " error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (source, file_size, file_mtime_ns, status, members, error, time.time()),
        )

    def member_places(self, source: str) -> dict[str, int]:
        """member path -> place id, for every place inside the archive at `source`."""
        return dict(
            self.conn.execute(
                "SELECT member, id FROM places WHERE source = ? AND member != ''", (source,)
            )
        )

    def archive_order(self) -> dict[int, str]:
        """image id -> its first place inside an archive, as source, NUL, member (so that ids
        sort archive by archive, member by member), for every image found in one."""
        return dict(
            self.conn.execute(
                "SELECT image_id, min(source || char(0) || member) FROM places "
                "WHERE member != '' GROUP BY image_id"
            )
        )

    def delete_containers_under(self, root: str, exists) -> int:
        """Forget archives under folder `root` for which `exists(path)` is false."""
        prefix = root.rstrip("/") + "/"
        gone = [
            (source,)
            for (source,) in self.conn.execute(
                "SELECT source FROM containers WHERE substr(source, 1, ?) = ?",
                (len(prefix), prefix),
            )
            if not exists(source)
        ]
        self.conn.executemany("DELETE FROM containers WHERE source = ?", gone)
        return len(gone)
