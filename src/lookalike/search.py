"""Search: turn queries (files, URLs, `id:N`) into vectors, find neighbours, collapse
near-duplicates, and attach what the catalog knows about each hit.

Near-duplicate collapsing: the index returns a few times more candidates than asked for; going
down them best-first, a candidate whose cosine similarity to an already kept hit is at least
`DUPLICATE_THRESHOLD` joins that hit's `duplicates` instead of taking a slot of its own. Images
with the same bytes are one catalog row already (with several places), so they never appear
twice. The threshold was measured on re-encoded, rescaled copies versus distinct images (see
docs/quality.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog.records import ImageRecord
from .decode import DecodeError, decode_image
from .library import Library
from .sources.base import SourceError
from .sources.http import fetch_bytes, is_url

DUPLICATE_THRESHOLD = 0.97  # measured: docs/quality.md, 'Near-duplicate threshold'
CANDIDATE_FACTOR = 4  # candidates fetched per requested hit, to fill k after collapsing

_ID_QUERY = re.compile(r"^id:(\d+)$")


class QueryError(ValueError):
    """A query that cannot be run; the message says why."""


@dataclass
class Hit:
    id: int
    score: float
    record: ImageRecord
    duplicates: list[Hit] = field(default_factory=list)


@dataclass
class QueryResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None


class Searcher:
    def __init__(self, library: Library):
        self.library = library

    # -- queries -> vectors ---------------------------------------------------------------------

    def query_vector(self, query: str) -> tuple[np.ndarray, int | None]:
        """(vector, id of the query itself when it is an indexed image) for one query string."""
        match = _ID_QUERY.match(query.strip())
        if match:
            image_id = int(match.group(1))
            ids, vectors = self.library.catalog.vectors([image_id])
            if not len(ids):
                raise QueryError(f"no indexed image with id {image_id}")
            return vectors[0], image_id
        if is_url(query):
            try:
                data = fetch_bytes(query)
            except SourceError as exc:
                raise QueryError(str(exc)) from None
        else:
            path = Path(query)
            if not path.is_file():
                raise QueryError(
                    f"no such file: {query} (a query is a file, an http(s) URL or id:N)"
                )
            data = path.read_bytes()
        return self.embed_bytes(data), None

    def embed_bytes(self, data: bytes) -> np.ndarray:
        embedder = self.library.embedder
        size = getattr(embedder.preprocessor(), "size", None)
        try:
            image = decode_image(data, min_size=size).image
        except DecodeError as exc:
            raise QueryError(f"cannot read the query image: {exc}") from None
        vector = embedder.embed_images([image])[0]
        return vector.astype(np.float16).astype(np.float32)  # as the index stores them

    # -- vectors -> hits ------------------------------------------------------------------------

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        exclude: int | None = None,
        collapse: bool = True,
        threshold: float = DUPLICATE_THRESHOLD,
    ) -> list[Hit]:
        index = self.library.index
        wanted = k * CANDIDATE_FACTOR if collapse else k
        wanted = min(len(index), wanted + (exclude is not None))
        if wanted <= 0:
            return []
        scores, ids = index.search(vector[None, :], wanted)
        candidates = [
            (int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != exclude
        ]
        records = self.library.catalog.images([i for i, _ in candidates])
        candidates = [(i, s) for i, s in candidates if i in records]  # deleted meanwhile
        if not collapse:
            return [Hit(i, s, records[i]) for i, s in candidates[:k]]
        return _collapse(candidates, records, self.library, k, threshold)

    def search(
        self, queries: list[str], k: int = 10, *, collapse: bool = True
    ) -> list[QueryResult]:
        results = []
        for query in queries:
            try:
                vector, own_id = self.query_vector(query)
            except QueryError as exc:
                results.append(QueryResult(query, error=str(exc)))
                continue
            hits = self.search_vector(vector, k, exclude=own_id, collapse=collapse)
            results.append(QueryResult(query, hits))
        return results


def _collapse(
    candidates: list[tuple[int, float]],
    records: dict[int, ImageRecord],
    library: Library,
    k: int,
    threshold: float,
) -> list[Hit]:
    ids, vectors = library.catalog.vectors([i for i, _ in candidates])
    vector_of = dict(zip(ids.tolist(), vectors))
    hits: list[Hit] = []
    kept_vectors: list[np.ndarray] = []
    for image_id, score in candidates:
        vec = vector_of.get(image_id)
        if vec is not None and kept_vectors:
            sims = np.stack(kept_vectors) @ vec
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                hits[best].duplicates.append(Hit(image_id, score, records[image_id]))
                continue
        if len(hits) == k:
            continue  # full: later candidates may still be duplicates of a kept hit
        hits.append(Hit(image_id, score, records[image_id]))
        kept_vectors.append(vec if vec is not None else np.zeros_like(vectors[0]))
    return hits
