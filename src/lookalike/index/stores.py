"""Where a library keeps its vectors, and how it stays consistent with the catalog.

`faiss` (the default): one file in the library folder, rebuilt from the catalog whenever in
doubt (see Library.reconcile).

`milvus`: a collection in a Milvus server (or a Milvus Lite file), named in the catalog's meta
table when the library is created (`--store milvus://host:19530`) and used from then on. Writes
reach Milvus only after the catalog committed them, and the catalog says what Milvus may lack:

- rows whose status is 'embedded' (vector committed, store not yet confirmed): upserted again;
- ids in `pending_deletes` (deleted from the catalog, store not yet confirmed): deleted again.

Both are replayed on every open for writing, and confirmed (status 'indexed', pending cleared)
only after Milvus flushed. Upserts and deletes by id are idempotent, so a crash between catalog
and Milvus, at any point, costs a replay and nothing else.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields

from .base import VectorIndex
from .milvus_index import INDEX_TYPES, METRICS, MilvusIndex, is_milvus_uri


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # "faiss" | "milvus"
    uri: str | None = None
    collection: str | None = None
    index_type: str = "AUTOINDEX"
    params: dict | None = None
    metric: str = "IP"

    @classmethod
    def parse(
        cls,
        store: str | None,
        *,
        index_type: str | None = None,
        params: dict | None = None,
        metric: str | None = None,
    ):
        """From a --store value: "faiss", or a Milvus URI / Milvus Lite file."""
        if store in (None, "", "faiss"):
            return cls("faiss")
        if not is_milvus_uri(store):
            raise ValueError(
                f"unknown store {store!r}: use faiss, milvus://host:port, or a Milvus Lite "
                "file path ending in .db"
            )
        if index_type and index_type not in INDEX_TYPES:
            raise ValueError(f"index type must be one of {', '.join(INDEX_TYPES)}")
        if metric and metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}")
        return cls(
            "milvus",
            store,
            f"lookalike_{uuid.uuid4().hex[:12]}",
            index_type or "AUTOINDEX",
            params,
            metric or "IP",
        )

    @classmethod
    def from_meta(cls, catalog) -> StoreConfig:
        raw = catalog.get_meta("store")
        if raw is None:
            return cls("faiss")
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}  # settings a newer lookalike added are left out
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_meta(self, catalog) -> None:
        catalog.set_meta("store", json.dumps(self.__dict__))

    def same_place(self, other: StoreConfig) -> bool:
        return (self.kind, self.uri) == (other.kind, other.uri)

    def describe(self) -> str:
        if self.kind == "faiss":
            return "faiss"
        return f"milvus {self.uri} ({self.index_type}, {self.metric})"


def open_milvus(config: StoreConfig, dim: int) -> MilvusIndex:
    return MilvusIndex(
        config.uri,
        config.collection,
        dim,
        index_type=config.index_type,
        params=config.params,
        metric=config.metric,
    )


def replay(library, index: VectorIndex) -> tuple[int, int]:
    """Send the store what the catalog says it may lack; return (upserted, deleted)."""
    catalog = library.catalog
    embedded = catalog.ids_with_status("embedded")
    for start in range(0, len(embedded), 5000):
        ids, vectors = catalog.vectors(embedded[start : start + 5000])
        index.add(ids, vectors, catalog.index_attributes(ids))
    pending = catalog.pending_deletes()
    if len(pending):
        index.remove(pending)
    confirm(library, index)
    return len(embedded), len(pending)


def confirm(library, index: VectorIndex) -> None:
    """After the store made its writes durable: rows are indexed, deletions applied."""
    index.save()
    catalog = library.catalog
    pending = catalog.pending_deletes()
    with catalog.transaction():
        catalog.mark_all_embedded_indexed()
        catalog.clear_pending_deletes(pending)


def copy_all(library, index: VectorIndex, *, chunk: int = 5000) -> int:
    """Every catalog vector into `index` (with attributes); returns how many."""
    catalog = library.catalog
    total = 0
    for ids, vectors in catalog.iter_vectors(batch=chunk):
        index.add(ids, vectors, catalog.index_attributes(ids) if index.filters_pushdown else None)
        total += len(ids)
    return total
