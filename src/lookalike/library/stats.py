"""What a library holds, counted: images by status, places, model, index, ranking, disk use
(`lookalike stats` and the API's /stats), and the share of its pictures that are recolours."""

from __future__ import annotations

from lookalike.catalog import Catalog
from lookalike.pictures import share_of_recolours

from .library import Library


def library_stats(library: Library) -> dict:
    counts = library.catalog.status_counts()
    index = library.index
    whitening = library.whitening
    return {
        "library": str(library.root),
        "model": library.model_name,
        "model_id": library.catalog.get_meta("model_id"),
        "dim": library.catalog.dim or None,
        "model_chosen_by": library.model_chosen_by,  # user, default or tune (tuning/recolours.py)
        "recolour_share": library_share(library.catalog),  # None: indexed before it was kept
        "images": sum(counts.values()),
        "status": {s: counts.get(s, 0) for s in ("decoded", "embedded", "indexed", "failed")},
        "places": library.catalog.count_places(),
        "archives": library.catalog.table_status_counts("containers"),
        "downloads": library.catalog.table_status_counts("downloads"),
        "vectors_by_model": library.catalog.models(),
        "store": library.store.__dict__,
        "index": {"type": index.kind, "vectors": len(index)},
        "ranking": {  # tuning/tuner.py: a whitening learned from the library's own images, or cosine
            "whitening": whitening is not None,
            "learned_from": whitening.images if whitening else None,
            "library_size_then": whitening.library_size if whitening else None,
        },
        "bytes_on_disk": library.bytes_on_disk(),
    }


def library_share(catalog: Catalog) -> float | None:
    """`share_of_recolours` over every picture of the library; None when most of its
    pictures were indexed before palette keys were kept (RecolourCount is then the way)."""
    keys = catalog.palette_keys()
    looked = [key for key in keys if key is not None]
    if not looked or len(looked) * 2 < len(keys):
        return None
    return share_of_recolours(looked)
