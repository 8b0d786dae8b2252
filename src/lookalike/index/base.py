"""The `VectorIndex` interface: a store of (id, vector) pairs searched by inner product.

Vectors are L2-normalised, so inner product is cosine similarity: 1.0 for identical vectors.
Ids are the catalog's image ids. A new store (Milvus, ...) is one new module implementing this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class VectorIndex(ABC):
    #: A short description for `lookalike stats`, e.g. "flat" or "ivf1024,nprobe=16".
    kind: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids; an id already present is replaced."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (unknown ids are ignored); return how many were removed."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; missing slots have id -1.
        With `allowed`, only those ids are candidates (metadata filters)."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids present, as int64."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
