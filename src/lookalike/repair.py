"""`lookalike check --repair`: put right what check.py found.

The catalog is the source of truth (check.py's docstring says why), so repairing means making
everything derived from it again: dangling rows and vectors that cannot be right are dropped
(their images go back to 'decoded', so the next `index` run embeds them again), the index is
rebuilt from the stored vectors, tiny pictures, details and pixel hashes from before schema v9
are made again from the originals,
and the ranking is learned again when it is due. A damaged catalog is not repaired here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import tuning
from .catalog.vectors import VECTOR_DTYPE
from .check import model_detail_bytes, unsound_vector_ids
from .library import INDEX_FILE, WHITENING_FILE, Library
from .reembed import fill_details, fill_pixel_hashes, fill_tiny_pictures


def repair_library(root: Path) -> list[str]:
    """Put right what check_library found (its caller holds no lock: Library.open(write=True)
    takes it); returns a line for each thing done."""
    done: list[str] = []
    with Library.open(root, write=True) as library:
        catalog = library.catalog
        conn = catalog.conn
        dim = int(catalog.get_meta("dim") or 0)
        width = np.dtype(VECTOR_DTYPE).itemsize
        with catalog.transaction():
            n = conn.execute(
                "DELETE FROM places WHERE image_id NOT IN (SELECT id FROM images)"
            ).rowcount
            n += conn.execute(
                "DELETE FROM vectors WHERE image_id NOT IN (SELECT id FROM images)"
            ).rowcount
            if n:
                done.append(f"removed {n} rows that pointed at no image")
            bad = [
                (i,) for (i,) in conn.execute(
                    "SELECT image_id FROM vectors WHERE length(vector) != ?", (dim * width,)
                )
            ] + [(i,) for i in unsound_vector_ids(catalog, dim)]  # fmt: skip
            conn.executemany("DELETE FROM vectors WHERE image_id = ?", bad)
            detail_bytes = model_detail_bytes(catalog)
            if detail_bytes is not None:
                n = conn.execute(
                    "UPDATE vectors SET detail = NULL"
                    " WHERE detail IS NOT NULL AND length(detail) != ?",
                    (detail_bytes,),
                ).rowcount
                if n:
                    done.append(f"dropped {n} damaged details")

            # Images without a vector go back to 'decoded': the next `index` run reads their
            # files again and embeds them (a 'decoded' row is not a finished one).
            n = conn.execute(
                "UPDATE images SET status = 'decoded' WHERE status IN ('embedded', 'indexed')"
                " AND id NOT IN (SELECT image_id FROM vectors)"
            ).rowcount
            if bad or n:
                done.append(
                    f"dropped {len(bad)} unsound vectors; {n} images will be embedded again by "
                    "the next `lookalike index` run over their folders"
                )
            n = conn.execute(
                "UPDATE images SET status = 'embedded' WHERE status IN ('decoded', 'failed')"
                " AND id IN (SELECT image_id FROM vectors)"
            ).rowcount
            if n:
                done.append(f"{n} images with a sound vector marked embedded")
        leftover = root / (INDEX_FILE + ".tmp")
        if leftover.exists():
            leftover.unlink()
            done.append(f"removed {leftover.name}")
        index = library.rebuild_index(save=True)
        done.append(f"rebuilt the index from the catalog: {len(index)} vectors, {index.kind}")
        filled, unreadable = fill_tiny_pictures(library)  # those a schema upgrade lacks too
        if filled or unreadable:
            line = f"made {filled} tiny pictures"
            if unreadable:
                line += f"; {len(unreadable)} could not be read, e.g. {unreadable[0][1]}"
            done.append(line)
        rehashed, unreadable = fill_pixel_hashes(library)  # indexed before schema v9
        if rehashed or unreadable:
            line = f"hashed the pixels of {rehashed} images again"
            if unreadable:
                line += (
                    f"; {len(unreadable)} could not be read (exact matches only for copies of"
                    f" the same bytes), e.g. {unreadable[0][1]}"
                )
            done.append(line)
        # dropped above, or not finite; only for a model with details that loads here
        filled, unreadable = fill_details(library) if detail_bytes else (0, [])
        if filled or unreadable:
            line = f"made the details of {filled} images"
            if unreadable:
                line += (
                    f"; {len(unreadable)} could not be read (ranked by their vectors alone),"
                    f" e.g. {unreadable[0][1]}"
                )
            done.append(line)
        if tuning.due(library):
            learned = tuning.tune(library).whitening
            done.append("learned the ranking" if learned else "could not learn the ranking")
        elif (root / WHITENING_FILE).exists() and library.whitening is None:
            (root / WHITENING_FILE).unlink()  # unusable, and the library too small to learn
            done.append(f"removed the unusable {WHITENING_FILE}")
    return done
