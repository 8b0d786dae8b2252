"""Rules that `check` verifies and `repair` enforces alike: what a sound vector and sound
details are for the library's model."""

from __future__ import annotations

import numpy as np

from lookalike.catalog import Catalog
from lookalike.embed import MODELS

NORM_TOLERANCE = 0.02  # float16 storage keeps norms within ~1e-3 of 1


def model_detail_dim(catalog: Catalog) -> int | None:
    """How many numbers the library's model's details hold (0: it has none); None when the
    model is unknown or its runtime is not installed."""
    info = MODELS.get(catalog.get_meta("model") or "")
    if info is None or not info.runtime_installed():
        return None
    return info.load().detail_dim


def unsound_vector_ids(catalog: Catalog, dim: int) -> list[int]:
    """Ids of right-sized vectors with NaN/inf values or far from unit length."""
    bad: list[int] = []
    for ids, vectors in catalog.iter_vectors(dim=dim):
        with np.errstate(all="ignore"):
            norms = np.linalg.norm(vectors, axis=1)
        sound = np.isfinite(vectors).all(axis=1) & (np.abs(norms - 1) < NORM_TOLERANCE)
        bad.extend(ids[~sound].tolist())
    return bad
