"""A query as search sees it: its vector, and what else is known of it (its pixels, its
hashes, the indexed image it is), shared by the searcher, the hits and verification."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


class QueryError(ValueError):
    """A query that cannot be run; the message says why."""


@dataclass(frozen=True)
class QueryVector:
    vector: np.ndarray
    image_id: int | None = None  # the query is this indexed image (left out of its results)
    sha256: str | None = None  # of the query's bytes, to tell exact copies
    pixel_hash: str | None = None  # of its decoded pixels, likewise
    image: Image.Image | None = field(default=None, compare=False)  # decoded, for --verify
    # A picture's vector, ranked under the library's whitening; not a text or mixed query's,
    # which the whitening (learned from pictures only) was never fitted to
    picture: bool = True
    details: np.ndarray | None = field(default=None, compare=False)  # the model's (embed/base.py)
