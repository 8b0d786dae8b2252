"""The `vectors` table: embeddings and the model's details, stored at half precision (mixed
into `Catalog`; staging.py writes the same rows for `reindex --model`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

VECTOR_DTYPE = np.float16  # vectors are stored at half precision: 2 bytes per dimension


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as the catalog keeps them (VECTOR_DTYPE), back in float32: what the index and
    queries hold, so that an index rebuilt from the catalog gives the same scores."""
    return np.asarray(vectors).astype(VECTOR_DTYPE).astype(np.float32)


def vector_rows(ids, vectors: np.ndarray, details: np.ndarray | None = None) -> list[tuple]:
    """(id, vector blob, detail blob or None) rows, as the vectors table stores them."""
    blobs = np.asarray(vectors, dtype=VECTOR_DTYPE)
    extra = None if details is None else np.asarray(details, dtype=VECTOR_DTYPE)
    return [
        (int(i), blobs[n].tobytes(), None if extra is None else extra[n].tobytes())
        for n, i in enumerate(ids)
    ]


def _sized(column: str, dim: int | None) -> str:
    """The SQL condition that `column` holds `dim` numbers ("" for any)."""
    return "" if dim is None else f" AND length({column}) = {int(dim) * VECTOR_DTYPE().itemsize}"


class CatalogVectors:
    """Reading and filling `self.conn`'s vectors table; writing new ones (which also moves
    the images' status) is Catalog.store_vectors."""

    def vector_ids(self) -> np.ndarray:
        """Ids of all images that have a vector (status embedded or indexed)."""
        rows = self.conn.execute("SELECT image_id FROM vectors ORDER BY image_id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def vector_contents(self) -> list[tuple[int, str]]:
        """(id, sha256) of all images that have a vector: what they are, not when they came."""
        return self.conn.execute(
            "SELECT v.image_id, i.sha256 FROM vectors v JOIN images i ON i.id = v.image_id"
        ).fetchall()

    def vector_count(self) -> int:
        """How many images have a vector, without reading their ids."""
        return self.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]

    def vectors(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float32 matrix) for the given ids, in the order given."""
        return self._arrays("vector", ids)

    def details(self, ids: Iterable[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids that have sound details of length `dim`, float32 matrix) for the given ids, in
        the order given. Damaged details (another length, not finite) are left out, as if
        missing: one NaN would spoil a whole learned ranking."""
        having, details = self._arrays("detail", ids, dim)
        sound = np.isfinite(details).all(axis=1)
        return having[sound], details[sound]

    def _arrays(
        self, column: str, ids: Iterable[int], dim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 matrix) of `vectors.column` (not NULL, and `dim` long if given) for
        `ids`, in their order."""
        wanted = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        sized = _sized(column, dim)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.conn.execute(
                    f"SELECT image_id, {column} FROM vectors"
                    f" WHERE image_id IN ({marks}) AND {column} IS NOT NULL{sized}",
                    chunk,
                ).fetchall()
            )
        present = [i for i in wanted if i in found]
        return np.array(present, dtype=np.int64), self._decode_vectors([found[i] for i in present])

    def ids_lacking_details(self, dim: int) -> list[int]:
        """Images with a vector but without sound details of length `dim` (none: dropped as
        damaged, or stored by an older model version; another length; not finite)."""
        lacking: list[int] = []
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT image_id FROM vectors WHERE image_id > ? ORDER BY image_id LIMIT 5000",
                (last,),
            ).fetchall()
            if not rows:
                return lacking
            ids = [i for (i,) in rows]
            last = ids[-1]
            having = set(self.details(ids, dim)[0].tolist())
            lacking += [i for i in ids if i not in having]

    def fill_details(self, ids: list[int], details: np.ndarray) -> None:
        """Store details for images that have a vector (check --repair makes those lacking)."""
        extra = np.asarray(details, dtype=VECTOR_DTYPE)
        self.conn.executemany(
            "UPDATE vectors SET detail = ? WHERE image_id = ?",
            [(extra[n].tobytes(), i) for n, i in enumerate(ids)],
        )

    def detail_count(self, dim: int) -> int:
        """How many images have details of length `dim`."""
        return self.conn.execute(
            "SELECT count(*) FROM vectors WHERE length(detail) = ?",
            (dim * VECTOR_DTYPE().itemsize,),
        ).fetchone()[0]

    def iter_vectors(
        self, batch: int = 20_000, *, dim: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored vector (of `dim` numbers only, if given: check reads the right-sized
        ones), in chunks of (ids, float32 matrix), by id."""
        sized = _sized("vector", dim)
        last = -1
        while True:
            rows = self.conn.execute(
                f"SELECT image_id, vector FROM vectors WHERE image_id > ?{sized}"
                " ORDER BY image_id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield (
                np.array([r[0] for r in rows], dtype=np.int64),
                self._decode_vectors([r[1] for r in rows]),
            )

    @staticmethod
    def _decode_vectors(blobs: list[bytes]) -> np.ndarray:
        if not blobs:
            return np.zeros((0, 0), dtype=np.float32)
        joined = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE)
        return joined.reshape(len(blobs), -1).astype(np.float32)
