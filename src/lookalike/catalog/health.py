"""What `lookalike check` asks of the catalog and what `check --repair` puts right in it (mixed
into `Catalog`); the rules themselves are upkeep/'s."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .records import VECTOR_STATUSES
from .vectors import VECTOR_DTYPE

_VECTORED = "(" + ", ".join(f"'{status}'" for status in VECTOR_STATUSES) + ")"  # in SQL


def _bytes(dim: int) -> int:
    """How many bytes `dim` numbers take in the vectors table."""
    return int(dim) * VECTOR_DTYPE().itemsize


class CatalogHealth:
    """Checks and repairs over `self.conn`: SQLite's own checks, and the rows that break the
    rules of docs/architecture.md (dangling, wrong-sized, or at odds with their image's status)."""

    # -- the SQLite file ---------------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """What `PRAGMA quick_check` finds wrong with the file; none when it is sound."""
        found = [row[0] for row in self.conn.execute("PRAGMA quick_check")]
        return [] if found == ["ok"] else found

    def schema_version(self) -> int:
        """The schema version the file is at (0: the library's creation never got so far)."""
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def dangling_rows(self) -> list[str]:
        """The table of each row whose foreign key points at no image (`PRAGMA
        foreign_key_check`), one entry a row."""
        return [row[0] for row in self.conn.execute("PRAGMA foreign_key_check")]

    def drop_dangling_rows(self) -> int:
        """Delete the places and vectors of images that are gone; returns how many."""
        n = self.conn.execute(
            "DELETE FROM places WHERE image_id NOT IN (SELECT id FROM images)"
        ).rowcount
        n += self.conn.execute(
            "DELETE FROM vectors WHERE image_id NOT IN (SELECT id FROM images)"
        ).rowcount
        return n

    # -- vectors and details -----------------------------------------------------------------------

    def missized_vector_ids(self, dim: int) -> list[int]:
        """Images whose vector is not `dim` numbers long."""
        rows = self.conn.execute(
            "SELECT image_id FROM vectors WHERE length(vector) != ?", (_bytes(dim),)
        )
        return [i for (i,) in rows]

    def vectorless_image_count(self) -> int:
        """How many images marked embedded or indexed have no vector."""
        return self.conn.execute(
            f"SELECT COUNT(*) FROM images i WHERE i.status IN {_VECTORED}"
            " AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.image_id = i.id)"
        ).fetchone()[0]

    def stray_vector_count(self) -> int:
        """How many vectors belong to images marked decoded or failed."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM vectors v JOIN images i ON i.id = v.image_id"
            f" WHERE i.status NOT IN {_VECTORED}"
        ).fetchone()[0]

    def drop_vectors(self, ids: Iterable[int]) -> None:
        """Delete the vectors (and details) of these images; their status is left as it is."""
        self.conn.executemany("DELETE FROM vectors WHERE image_id = ?", [(int(i),) for i in ids])

    def missized_detail_count(self, dim: int) -> int:
        """How many images have details that are not `dim` numbers long (damaged)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM vectors WHERE detail IS NOT NULL AND length(detail) != ?",
            (_bytes(dim),),
        ).fetchone()[0]

    def drop_missized_details(self, dim: int) -> int:
        """Forget details that are not `dim` numbers long; returns how many."""
        return self.conn.execute(
            "UPDATE vectors SET detail = NULL WHERE detail IS NOT NULL AND length(detail) != ?",
            (_bytes(dim),),
        ).rowcount

    def unmark_vectorless_images(self) -> int:
        """Send images marked embedded or indexed that have no vector back to 'decoded' (the
        next `index` run embeds them again); returns how many."""
        return self.conn.execute(
            f"UPDATE images SET status = 'decoded' WHERE status IN {_VECTORED}"
            " AND id NOT IN (SELECT image_id FROM vectors)"
        ).rowcount

    def mark_vectored_images_embedded(self) -> int:
        """Mark images marked decoded or failed that have a vector 'embedded'; returns how
        many."""
        return self.conn.execute(
            "UPDATE images SET status = 'embedded' WHERE status IN ('decoded', 'failed')"
            " AND id IN (SELECT image_id FROM vectors)"
        ).rowcount

    # -- files -------------------------------------------------------------------------------------

    def place_sources(self) -> Iterator[str]:
        """Every file, archive or URL a place points at, once each."""
        for (source,) in self.conn.execute("SELECT DISTINCT source FROM places"):
            yield source

    def cached_download_paths(self) -> Iterator[str]:
        """Where each finished download is kept, relative to the library's downloads folder."""
        for (path,) in self.conn.execute(
            "SELECT path FROM downloads WHERE status = 'done' AND path IS NOT NULL"
        ):
            yield path
