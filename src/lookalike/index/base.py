"""The `VectorIndex` interface: a store of (id, vector) pairs searched by inner product.

Vectors are L2-normalised, so inner product is cosine similarity: 1.0 for identical vectors.
Ids are the catalog's image ids. A new store (Milvus, ...) is one new module implementing this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class StoreError(RuntimeError):
    """The vector store cannot be used (unreachable, busy); the message says what to do."""


class VectorIndex(ABC):
    #: A short description for `lookalike stats`, e.g. "flat" or "ivf1024,nprobe=16".
    kind: str

    @abstractmethod
    def __len__(self) -> int: ...

    #: True when search() takes `filters` and applies them itself (Milvus); otherwise the
    #: searcher turns filters into an `allowed` id list from the catalog.
    filters_pushdown: bool = False

    @abstractmethod
    def add(
        self, ids: np.ndarray, vectors: np.ndarray, attributes: list[dict] | None = None
    ) -> None:
        """Add vectors under the given ids. `attributes`: per vector, what a store that
        filters by itself keeps beside it (licence, site, format, width, height)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (unknown ids are ignored); return how many were removed."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, filters=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; missing slots have id -1.
        With `allowed`, only those ids are candidates; `filters` (a search.Filters) only
        where `filters_pushdown`."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids present, as int64."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
