"""The catalog side of `lookalike reindex --model`: vectors of the next model, staged beside the
ones in use, then swapped in with one transaction.

Until the swap nothing that search reads changes (`vectors`, the meta model, the index file),
so an interrupted re-embedding leaves the library working as before, and the next run carries
on from what was staged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from .records import ModelChooser
from .store import Catalog
from .vectors import vector_rows

# what `index_model_id` holds after a swap: matches no model, so any saved index is rebuilt
STALE_INDEX = "stale: the library's model changed"


def staged_ids(catalog: Catalog, model_id: str) -> np.ndarray:
    """Ids staged for `model_id`; rows staged for any other model are dropped first (a
    re-embedding to another model that was given up)."""
    with catalog.transaction():
        catalog.conn.execute("DELETE FROM staged_vectors WHERE model != ?", (model_id,))
    rows = catalog.conn.execute("SELECT image_id FROM staged_vectors ORDER BY image_id")
    return np.array([r[0] for r in rows.fetchall()], dtype=np.int64)


def stage_vectors(
    catalog: Catalog,
    ids: list[int],
    vectors: np.ndarray,
    model_id: str,
    details: np.ndarray | None = None,
) -> None:
    """Call inside a transaction; one per batch, so a stop loses at most a batch."""
    catalog.conn.executemany(
        "INSERT OR REPLACE INTO staged_vectors (image_id, model, vector, detail)"
        " VALUES (?, ?, ?, ?)",
        [(i, model_id, vector, detail) for i, vector, detail in vector_rows(ids, vectors, details)],
    )


def swap_in_staged(
    catalog: Catalog,
    name: str,
    model_id: str,
    dim: int,
    dropped: Iterable[tuple[int, str]],
    chosen_by: ModelChooser = "user",
) -> int:
    """Make the staged vectors the library's, in one transaction: the vectors, each image's
    model and status, and the library's model, who chose it (`chosen_by`: 'user' or 'tune'),
    model_id and dim. Images in `dropped` (id, reason) lose their old vector and are marked
    failed with the reason. Returns how many vectors were swapped in."""
    now = time.time()
    with catalog.transaction():
        conn = catalog.conn
        for image_id, reason in dropped:
            conn.execute("DELETE FROM vectors WHERE image_id = ?", (image_id,))
            conn.execute(
                "UPDATE images SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                (f"not re-embedded with {model_id}: {reason}", now, image_id),
            )
        # images deleted meanwhile took their staged rows with them (ON DELETE CASCADE)
        swapped = conn.execute(
            "INSERT OR REPLACE INTO vectors (image_id, vector, detail) "
            "SELECT image_id, vector, detail FROM staged_vectors WHERE model = ?",
            (model_id,),
        ).rowcount
        conn.execute(
            "UPDATE images SET status = 'embedded', model = ?, error = NULL, updated_at = ? "
            "WHERE id IN (SELECT image_id FROM staged_vectors WHERE model = ?)",
            (model_id, now, model_id),
        )
        conn.execute("DELETE FROM staged_vectors")
        catalog.set_meta("model", name)
        catalog.set_meta("model_chosen_by", chosen_by)
        catalog.set_meta("model_id", model_id)
        catalog.set_meta("dim", str(dim))
        catalog.set_meta("index_model_id", STALE_INDEX)
    return swapped
