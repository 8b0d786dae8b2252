"""`Catalog`: the SQLite store of images, the places they were found, and their vectors.

The catalog is the library's source of truth. The vector index is a derived, rebuildable
cache of the `vectors` table; whatever happens to the index file, `lookalike reindex` (and the
reconciliation done on every open) brings it back from here.

Concurrency: WAL mode, so searches (readers, including other processes) never block on an
indexing job (the one writer, guarded by the library lock), and a kill -9 loses at most the
uncommitted batch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .health import CatalogHealth
from .places import CatalogPlaces
from .queries import CatalogQueries
from .records import ImageRecord, NewImage, Place
from .schema import STORED_FORM_HASHES, migrate
from .vectors import CatalogVectors, vector_rows

# Nothing left to do that needs the image's file: an 'embedded' vector reaches the index from the
# catalog (Library reconciles on open), so a re-run after a crash need not read those files again.


class Catalog(CatalogVectors, CatalogPlaces, CatalogQueries, CatalogHealth):
    def __init__(
        self, path: Path, *, readonly: bool = False, any_thread: bool = False, upgrade: bool = True
    ):
        """`any_thread`: the connection may be used from several threads, one at a time (the
        caller serialises); by default it stays in the thread that opened it. `upgrade=False`:
        a writable connection that leaves an older schema as it is (`lookalike check`, which
        must be able to recover a WAL after a crash, something a read-only one cannot do)."""
        self.path = Path(path)
        self.readonly = readonly
        options = {"isolation_level": None, "timeout": 30, "check_same_thread": not any_thread}
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, **options)
        else:
            self.conn = sqlite3.connect(self.path, **options)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL
            if upgrade:
                migrate(self.conn)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 30000")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (Ctrl-C included)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # A writer whose transaction spans many calls (the indexing pipeline's batches) opens and
    # closes it itself; `transaction()` is for one block.

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        """ROLLBACK the open transaction; nothing when none is open."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def data_version(self) -> int:
        """SQLite's data_version: it changes when another connection commits."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # -- meta ---------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The dimension of the library's vectors; 0 before its first vector is stored."""
        return int(self.get_meta("dim") or 0)

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- writing, as the indexing pipeline goes ---------------------------------------------------
    # (places and archives: places.py)

    def image_by_sha(self, sha256: str) -> tuple[int, str] | None:
        """(id, status) of the image with these bytes, or None."""
        return self.conn.execute(
            "SELECT id, status FROM images WHERE sha256 = ?", (sha256,)
        ).fetchone()

    def put_image(self, image: NewImage) -> int:
        """Insert the image with these bytes, or update its row; return its id."""
        now = time.time()
        i = image
        row = self.conn.execute(
            "INSERT INTO images (sha256, byte_size, width, height, format, frames, status, error,"
            " pixel_hash, tiny, palette_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sha256) DO UPDATE SET width = excluded.width, height = excluded.height,"
            " format = excluded.format, frames = excluded.frames, status = excluded.status,"
            " error = excluded.error, pixel_hash = excluded.pixel_hash,"
            " tiny = COALESCE(excluded.tiny, tiny),"
            " palette_key = COALESCE(excluded.palette_key, palette_key),"
            " updated_at = excluded.updated_at RETURNING id",
            (i.sha256, i.byte_size, i.width, i.height, i.format, i.frames, i.status, i.error,
             i.pixel_hash, i.tiny, i.palette_key, now, now),
        ).fetchone()  # fmt: skip
        return row[0]

    def fill_palette_key(self, image_id: int, palette_key: str) -> None:
        """Give an image indexed before palette keys were kept (schema v8) its key."""
        self.conn.execute(
            "UPDATE images SET palette_key = ? WHERE id = ? AND palette_key IS NULL",
            (palette_key, image_id),
        )

    def palette_keys(self) -> list[str | None]:
        """The palette key of every image with a vector (NULL: not looked at)."""
        rows = self.conn.execute(
            "SELECT palette_key FROM images WHERE id IN (SELECT image_id FROM vectors)"
        )
        return [key for (key,) in rows]

    def fill_tiny(self, image_id: int, tiny: bytes) -> None:
        """Give an image indexed before tiny pictures existed (schema v6), or whose tiny
        picture is damaged (another length), its tiny picture."""
        self.conn.execute(
            "UPDATE images SET tiny = ?1 WHERE id = ?2"
            " AND (tiny IS NULL OR length(tiny) != length(?1))",
            (tiny, image_id),
        )

    def ids_with_stored_form_pixel_hashes(self) -> list[int]:
        """Images hashed before schema v9 (catalog/schema.py) whose hash may be of how their
        pixels were stored rather than of the colours shown; none once `check --repair` has
        hashed them again."""
        up_to = self.get_meta(STORED_FORM_HASHES)
        if up_to is None:
            return []
        rows = self.conn.execute(
            "SELECT id FROM images WHERE id <= ? AND pixel_hash IS NOT NULL", (int(up_to),)
        )
        return [r[0] for r in rows]

    def set_pixel_hash(self, image_id: int, pixel_hash: str | None) -> None:
        self.conn.execute("UPDATE images SET pixel_hash = ? WHERE id = ?", (pixel_hash, image_id))

    def forget_stored_form_pixel_hashes(self) -> None:
        """Every image before v9 has been hashed again (or, unreadable, has no hash now)."""
        self.conn.execute("DELETE FROM meta WHERE key = ?", (STORED_FORM_HASHES,))

    def ids_lacking_tiny(self, length: int) -> list[int]:
        """Searchable images without a tiny picture of `length` bytes (none, or damaged)."""
        rows = self.conn.execute(
            "SELECT id FROM images WHERE status IN ('embedded', 'indexed')"
            " AND (tiny IS NULL OR length(tiny) != ?)",
            (length,),
        )
        return [r[0] for r in rows]

    def tiny_pictures(self, *, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """Ids, sizes (width, height; 0 where unknown) and tiny pictures of the images after
        `after_id` that have one."""
        rows = self.conn.execute(
            "SELECT id, width, height, tiny FROM images"
            " WHERE id > ? AND tiny IS NOT NULL ORDER BY id",
            (after_id,),
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        sizes = np.array([(r[1] or 0, r[2] or 0) for r in rows], dtype=np.int32).reshape(-1, 2)
        return ids, sizes, [r[3] for r in rows]

    def tiny_picture(self, image_id: int) -> bytes | None:
        row = self.conn.execute("SELECT tiny FROM images WHERE id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def image_count_and_max_id(self) -> tuple[int, int]:
        """(rows, largest id) of the images table: cheap, and changed by any insert or delete."""
        count, largest = self.conn.execute("SELECT count(*), max(id) FROM images").fetchone()
        return int(count), int(largest or 0)

    def store_vectors(
        self, ids: list[int], vectors: np.ndarray, model: str, details: np.ndarray | None = None
    ) -> None:
        """Save embeddings (and the model's details, if it has them) and move the images to
        status 'embedded'."""
        now = time.time()
        self.conn.executemany(
            "INSERT OR REPLACE INTO vectors (image_id, vector, detail) VALUES (?, ?, ?)",
            vector_rows(ids, vectors, details),
        )
        self.conn.executemany(
            "UPDATE images SET status = 'embedded', model = ?, error = NULL, updated_at = ?"
            " WHERE id = ?",
            [(model, now, i) for i in ids],
        )

    def mark_all_embedded_indexed(self) -> None:
        self.conn.execute("UPDATE images SET status = 'indexed' WHERE status = 'embedded'")

    def mark_indexed(self, ids: Iterable[int]) -> None:
        self.conn.executemany(
            "UPDATE images SET status = 'indexed' WHERE id = ? AND status = 'embedded'",
            [(int(i),) for i in ids],
        )

    def mark_embedded(self, ids: Iterable[int]) -> None:
        """Back from 'indexed' to 'embedded': the vector is stored but not in the saved index."""
        self.conn.executemany(
            "UPDATE images SET status = 'embedded' WHERE id = ? AND status = 'indexed'",
            [(int(i),) for i in ids],
        )

    def delete_images(self, ids: Iterable[int]) -> None:
        """Delete images (places and vectors go with them), and note the ids for the vector
        store, in the same transaction as the caller's."""
        rows = [(int(i),) for i in ids]
        self.conn.executemany("DELETE FROM images WHERE id = ?", rows)
        self.conn.executemany("INSERT OR IGNORE INTO pending_deletes (image_id) VALUES (?)", rows)

    def pending_deletes(self) -> np.ndarray:
        rows = self.conn.execute("SELECT image_id FROM pending_deletes").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def clear_pending_deletes(self, ids: Iterable[int]) -> None:
        self.conn.executemany(
            "DELETE FROM pending_deletes WHERE image_id = ?", [(int(i),) for i in ids]
        )

    # -- reading ---------------------------------------------------------------------------------

    def ids_with_status(self, status: str) -> np.ndarray:
        rows = self.conn.execute("SELECT id FROM images WHERE status = ?", (status,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        """Full records (with all places) for the given ids; unknown ids are left out."""
        wanted = [int(i) for i in ids]
        records: dict[int, ImageRecord] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            places: dict[int, list[Place]] = {}
            for row in self.conn.execute(
                "SELECT image_id, source, member, page_url, title, author, licence, tags"
                f" FROM places WHERE image_id IN ({marks}) ORDER BY id",
                chunk,
            ):
                places.setdefault(row[0], []).append(_place_from_row(row[1:]))
            for row in self.conn.execute(
                "SELECT id, sha256, byte_size, width, height, format, frames, model, status, error,"
                f" pixel_hash FROM images WHERE id IN ({marks})",
                chunk,
            ):
                records[row[0]] = ImageRecord(*row, places=tuple(places.get(row[0], ())))
        return records

    def image(self, image_id: int) -> ImageRecord | None:
        return self.images([image_id]).get(image_id)

    def status_counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM images GROUP BY status"))

    def table_status_counts(self, table: str) -> dict[str, int]:
        """Rows per status of the containers or downloads table."""
        assert table in ("containers", "downloads")
        return dict(self.conn.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status"))

    def count_places(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM places").fetchone()[0]

    def models(self) -> dict[str, int]:
        return dict(
            self.conn.execute(
                "SELECT model, COUNT(*) FROM images WHERE model IS NOT NULL GROUP BY model"
            )
        )


def _place_from_row(row) -> Place:
    source, member, page_url, title, author, licence, tags = row
    return Place(
        source=source,
        member=member,
        page_url=page_url,
        title=title,
        author=author,
        licence=licence,
        tags=tuple(json.loads(tags)) if tags else (),
    )
