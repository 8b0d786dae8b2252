"""`lookalike check --repair`: put right what upkeep/check.py found.

The catalog is the source of truth (upkeep/check.py's docstring says why), so repairing means making
everything derived from it again: dangling rows and vectors that cannot be right are dropped
(their images go back to 'decoded', so the next `index` run embeds them again), the index is
rebuilt from the stored vectors, tiny pictures, details and pixel hashes from before schema v9
are made again from the originals,
and the ranking is learned again when it is due. A damaged catalog is not repaired here.
"""

from __future__ import annotations

from pathlib import Path

from lookalike.catalog import Catalog
from lookalike.ingest import fill_details, fill_pixel_hashes, fill_tiny_pictures
from lookalike.library import INDEX_FILE, WHITENING_FILE, Library
from lookalike.tuning import due, tune

from .rules import model_detail_dim, unsound_vector_ids


def repair_library(root: Path) -> list[str]:
    """Put right what check_library found (its caller holds no lock: Library.open(write=True)
    takes it); returns a line for each thing done."""
    done: list[str] = []
    with Library.open(root, write=True) as library:
        detail_dim = _repair_catalog(library.catalog, done)
        leftover = root / (INDEX_FILE + ".tmp")
        if leftover.exists():
            leftover.unlink()
            done.append(f"removed {leftover.name}")
        index = library.rebuild_index(save=True)
        done.append(f"rebuilt the index from the catalog: {len(index)} vectors, {index.kind}")
        _make_again(library, detail_dim, done)
        if due(library):
            learned = tune(library).whitening
            done.append("learned the ranking" if learned else "could not learn the ranking")
        elif (root / WHITENING_FILE).exists() and library.whitening is None:
            (root / WHITENING_FILE).unlink()  # unusable, and the library too small to learn
            done.append(f"removed the unusable {WHITENING_FILE}")
    return done


def _repair_catalog(catalog: Catalog, done: list[str]) -> int | None:
    """Drop the rows that break the rules and set the images' statuses right, in one
    transaction; returns the model's detail dimension (rules.model_detail_dim)."""
    dim = catalog.dim
    with catalog.transaction():
        n = catalog.drop_dangling_rows()
        if n:
            done.append(f"removed {n} rows that pointed at no image")
        bad = catalog.missized_vector_ids(dim) + unsound_vector_ids(catalog, dim)
        catalog.drop_vectors(bad)
        detail_dim = model_detail_dim(catalog)
        if detail_dim is not None:
            n = catalog.drop_missized_details(detail_dim)
            if n:
                done.append(f"dropped {n} damaged details")

        # Images without a vector go back to 'decoded': the next `index` run reads their
        # files again and embeds them (a 'decoded' row is not a finished one).
        n = catalog.unmark_vectorless_images()
        if bad or n:
            done.append(
                f"dropped {len(bad)} unsound vectors; {n} images will be embedded again by "
                "the next `lookalike index` run over their folders"
            )
        n = catalog.mark_vectored_images_embedded()
        if n:
            done.append(f"{n} images with a sound vector marked embedded")
    return detail_dim


def _make_again(library: Library, detail_dim: int | None, done: list[str]) -> None:
    """Make again from the originals what the catalog lacks: tiny pictures, pixel hashes from
    before schema v9, and details."""
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
    filled, unreadable = fill_details(library) if detail_dim else (0, [])
    if filled or unreadable:
        line = f"made the details of {filled} images"
        if unreadable:
            line += (
                f"; {len(unreadable)} could not be read (ranked by their vectors alone),"
                f" e.g. {unreadable[0][1]}"
            )
        done.append(line)
