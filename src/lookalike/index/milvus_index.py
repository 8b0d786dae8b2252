"""Vectors in Milvus, for collections that outgrow one machine (or that a team shares).

One collection per library: the image id (primary key), the vector, and the fields that
filters push down to Milvus (licence, site, format, width, height). All other metadata stays
in the catalog. The store is named by a URI:

    milvus://host:19530            a Milvus standalone or cluster (http://host:19530 works too)
    path/to/vectors.db             Milvus Lite, an embedded engine in one file

Writes are idempotent (`upsert` by id, deletes by id), which is what makes crash recovery
simple: the catalog is the source of truth, and the library replays what Milvus may have missed
(rows still 'embedded', ids in the catalog's pending-delete list) on every open for writing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .base import StoreError, VectorIndex

INDEX_TYPES = ("AUTOINDEX", "IVF_FLAT", "HNSW", "FLAT")
# Vectors are unit length, so all three rank alike; scores are reported as cosine similarity
# whichever Milvus computes (L2 gives the squared distance, 2 - 2 cos).
METRICS = ("IP", "COSINE", "L2")
DEFAULT_PARAMS = {"IVF_FLAT": {"nlist": 1024}, "HNSW": {"M": 16, "efConstruction": 200}}
SEARCH_PARAMS = {"IVF_FLAT": {"nprobe": 32}, "HNSW": {"ef": 128}}
BATCH = 2000  # rows per insert: keeps each request well under Milvus's message limits


def is_milvus_uri(store: str | None) -> bool:
    if not store:
        return False
    return urlsplit(store).scheme in ("milvus", "http", "https") or store.endswith(".db")


def client_uri(store: str) -> str:
    """What pymilvus wants: http://host:port for a server, a file path for Milvus Lite."""
    parts = urlsplit(store)
    if parts.scheme == "milvus":
        return f"http://{parts.netloc}"
    if parts.scheme in ("http", "https"):
        return store
    return str(Path(store).expanduser().resolve())


class MilvusIndex(VectorIndex):
    filters_pushdown = True

    def __init__(
        self,
        store: str,
        collection: str,
        dim: int,
        *,
        index_type: str = "AUTOINDEX",
        params: dict | None = None,
        metric: str = "IP",
    ):
        from pymilvus import MilvusClient

        if index_type not in INDEX_TYPES:
            raise ValueError(f"index type must be one of {', '.join(INDEX_TYPES)}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}")
        self.metric = metric
        self.store = store
        self.collection = collection
        self._dim = dim
        self.index_type = index_type
        self.params = params if params is not None else DEFAULT_PARAMS.get(index_type, {})
        quiet = logging.getLogger("milvus_lite")  # it logs a traceback of its own; ours says why
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            self.client = MilvusClient(client_uri(store))
        except Exception as exc:  # pymilvus raises its own family, and plain OSErrors
            hint = ""
            if not urlsplit(store).scheme:
                hint = (
                    " (a Milvus Lite file is open in one process at a time: stop the other "
                    "lookalike, or use a Milvus server for concurrent indexing and serving)"
                )
            raise StoreError(f"cannot open Milvus at {store}: {exc}{hint}") from None
        finally:
            quiet.setLevel(level)
        if not self.client.has_collection(collection):
            self._create()
        self.client.load_collection(collection)

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
        schema.add_field("licence", DataType.VARCHAR, max_length=512)
        schema.add_field("site", DataType.VARCHAR, max_length=512)
        schema.add_field("format", DataType.VARCHAR, max_length=16)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        index = self.client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=self.index_type,
            metric_type=self.metric,
            params=self.params,
        )
        self.client.create_collection(self.collection, schema=schema, index_params=index)

    # -- VectorIndex ----------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return (
            f"milvus {self.index_type} {self.metric} ({self.store}, collection {self.collection})"
        )

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    def add(self, ids, vectors, attributes: list[dict] | None = None) -> None:
        """Upsert: adding an id again replaces it, so replays after a crash are harmless."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32)
        attributes = attributes or [{} for _ in ids]
        for start in range(0, len(ids), BATCH):
            rows = [
                {
                    "id": int(ids[i]),
                    "vector": vectors[i].tolist(),
                    "licence": (attributes[i].get("licence") or "")[:512].lower(),
                    "site": (attributes[i].get("site") or "")[:512].lower(),
                    "format": (attributes[i].get("format") or "")[:16].upper(),
                    "width": int(attributes[i].get("width") or 0),
                    "height": int(attributes[i].get("height") or 0),
                }
                for i in range(start, min(start + BATCH, len(ids)))
            ]
            self.client.upsert(self.collection, rows)

    def remove(self, ids) -> int:
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        if not ids:
            return 0
        removed = 0
        for start in range(0, len(ids), BATCH):
            result = self.client.delete(self.collection, ids=ids[start : start + BATCH])
            removed += (
                len(result) if isinstance(result, list) else int(result.get("delete_count", 0))
            )
        return removed

    def search(self, queries, k: int, *, allowed=None, filters=None):
        expression = filter_expression(filters, allowed)
        results = self.client.search(
            self.collection,
            data=np.asarray(queries, dtype=np.float32).tolist(),
            limit=k,
            filter=expression,
            search_params={
                "metric_type": self.metric,
                "params": SEARCH_PARAMS.get(self.index_type, {}),
            },
        )
        n = len(results)
        scores = np.zeros((n, k), np.float32)
        ids = np.full((n, k), -1, np.int64)
        for row, hits in enumerate(results):
            for col, hit in enumerate(hits[:k]):
                ids[row, col] = hit["id"]
                scores[row, col] = hit["distance"]
        if self.metric == "L2":
            scores = np.where(ids >= 0, 1.0 - scores / 2.0, 0.0).astype(np.float32)
        return scores, ids

    def ids(self) -> np.ndarray:
        found = []
        iterator = self.client.query_iterator(
            self.collection, filter="id >= 0", output_fields=["id"], batch_size=10_000
        )
        try:
            while batch := iterator.next():
                found.extend(row["id"] for row in batch)
        finally:
            iterator.close()
        return np.array(sorted(found), dtype=np.int64)

    def needs_rebuild(self, *args) -> bool:
        return False  # Milvus keeps its own index up to date

    def save(self, path: Path | None = None) -> None:
        """Make what was written durable (Milvus flushes segments); there is no local file."""
        self.client.flush(self.collection)

    def drop(self) -> None:
        self.client.drop_collection(self.collection)

    def close(self) -> None:
        self.client.close()
        if not urlsplit(self.store).scheme:
            # Milvus Lite keeps its embedded server (and the file's lock) until the process
            # exits; let go of it now, so another process can open the library.
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(client_uri(self.store))
            except (ImportError, AttributeError):
                pass


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_expression(filters, allowed=None) -> str:
    """Search filters as a Milvus boolean expression (licence and site match as substrings,
    any case; format exactly; width and height as minimums)."""
    parts = []
    if filters is not None:
        if filters.licence:
            parts.append(
                f"licence like {_quote('%' + filters.licence.lower().replace('%', '') + '%')}"
            )
        if filters.site:
            parts.append(f"site like {_quote('%' + filters.site.lower().replace('%', '') + '%')}")
        if filters.format:
            parts.append(f"format == {_quote(filters.format.upper())}")
        if filters.min_width:
            parts.append(f"width >= {int(filters.min_width)}")
        if filters.min_height:
            parts.append(f"height >= {int(filters.min_height)}")
    if allowed is not None:
        parts.append(f"id in [{', '.join(str(int(i)) for i in allowed)}]")
    return " and ".join(parts)
