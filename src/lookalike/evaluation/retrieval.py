"""`lookalike eval DATASET_DIR`: retrieval quality of the real pipeline on a labelled set.

The set's images are indexed into a library (a temporary one unless given) by the same
Indexer `lookalike index` uses, and every query runs through the same Searcher (collapsing
off, so that near-duplicates count as the separate relevant images they are). So the figures
measure what users get, preprocessing, index and all.

Protocol: with role=query and role=gallery rows, queries are the query rows (embedded from
their files) against a library of the gallery rows; otherwise leave-one-out: every labelled
image queries the library of all the others (by id, itself left out).
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.catalog import Place
from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.search import Searcher
from lookalike.sources import FileItem, Source
from lookalike.tuning import learn_if_due

from .metrics import GroundTruthRow, read_groundtruth, score_rankings

K = 10


@dataclass
class LabelScore:
    label: str
    queries: int
    map_at_k: float


@dataclass
class RetrievalReport:
    dataset: str
    by: str
    protocol: str  # "leave-one-out" | "query/gallery"
    images: int
    queries: int
    map_at_k: float
    recall_at_1: float
    recall_at_k: float
    precision_at_k: float
    k: int = K
    worst_labels: list[LabelScore] = field(default_factory=list)
    worst_categories: list[LabelScore] = field(default_factory=list)
    model: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


class ListedFiles(Source):
    """Exactly the ground truth's files (a data set folder may hold other images)."""

    def __init__(self, root: Path, rows: list[GroundTruthRow]):
        self.root = root
        self.rows = rows

    @property
    def description(self) -> str:
        return str(self.root)

    def items(self):
        for row in self.rows:
            path = os.path.abspath(self.root / row.path)
            stat = os.stat(path)
            yield FileItem(Place(source=path), stat.st_size, stat.st_mtime_ns, path=path)


def evaluate_retrieval(
    dataset: Path,
    *,
    by: str = "group",
    library_root: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,  # the model's weights, when not shipped nor downloadable
    progress: bool | None = False,
    tune: bool = True,  # learn the ranking as `lookalike index` would (tuning/tuner.py)
    indexer_options: dict | None = None,
) -> RetrievalReport:
    import time

    started = time.monotonic()
    dataset = Path(dataset).resolve()
    rows = read_groundtruth(dataset)
    if by not in ("group", "category"):
        raise ValueError("by must be 'group' or 'category'")
    gallery, queries, query_gallery = split_roles(rows)
    with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
        root = Path(library_root) if library_root else Path(tmp) / "library"
        with Library.open(root, write=True, model=model, weights=weights) as library:
            Indexer(library, progress=progress, **(indexer_options or {})).run(
                [ListedFiles(dataset, gallery)]
            )
            if tune:  # as `lookalike index` does
                learn_if_due(library, progress=progress)
            report = score_queries(library, dataset, gallery, queries, by, query_gallery)
    report.seconds = time.monotonic() - started
    return report


def split_roles(rows: list[GroundTruthRow]) -> tuple[list, list, bool]:
    """(gallery, queries, query_gallery): role=gallery and role=query rows when the set has
    both (query_gallery True), else every row as both (leave-one-out)."""
    query_gallery = {"query", "gallery"} <= {r.role for r in rows}
    if not query_gallery:
        return rows, rows, False
    return [r for r in rows if r.role == "gallery"], [r for r in rows if r.role == "query"], True


def score_queries(library, dataset, gallery, queries, by, query_gallery) -> RetrievalReport:
    catalog = library.catalog
    id_of: dict[str, int] = {}
    labels_of: dict[int, set[str]] = defaultdict(set)
    category_of: dict[int, str] = {}
    records = catalog.images(catalog.vector_ids())
    by_source = {p.source: rid for rid, rec in records.items() for p in rec.places}
    for row in gallery:
        image_id = by_source.get(os.path.abspath(dataset / row.path))
        if image_id is None:
            continue  # failed to decode: it counts as never found
        id_of[row.path] = image_id
        label = getattr(row, by)
        if label:
            labels_of[image_id].add(label)
        category_of.setdefault(image_id, row.category)
    holders: dict[str, set[int]] = defaultdict(set)
    for image_id, labels in labels_of.items():
        for label in labels:
            holders[label].add(image_id)

    searcher = Searcher(library)
    ranked, qlabels, nrel, qcats = [], [], [], []
    for row in queries:
        label = getattr(row, by)
        if not label:
            continue
        own = id_of.get(row.path) if not query_gallery else None
        relevant = len(holders[label] - {own})
        if relevant == 0:
            continue
        if query_gallery:
            vector = searcher.bytes_vector((dataset / row.path).read_bytes())
        elif own is None:
            vector = None  # the query itself could not be indexed: it finds nothing
        else:
            vector = searcher.id_vector(own)
        hits = searcher.search_vector(vector, K, collapse=False) if vector is not None else []
        ranked.append([label if label in labels_of.get(h.id, ()) else "" for h in hits])
        qlabels.append(label)
        nrel.append(relevant)
        qcats.append(row.category)
    scores = score_rankings(ranked, qlabels, nrel, K)
    return RetrievalReport(
        dataset=dataset.name,
        by=by,
        protocol="query/gallery" if query_gallery else "leave-one-out",
        images=len(records),
        queries=scores.queries,
        map_at_k=scores.map_at_k,
        recall_at_1=scores.recall_at_1,
        recall_at_k=scores.recall_at_k,
        precision_at_k=scores.precision_at_k,
        worst_labels=_worst(qlabels, scores.per_query_ap),
        worst_categories=_worst(qcats, scores.per_query_ap) if by == "group" else [],
        model=library.embedder.model_id,
    )


def _worst(keys: list[str], aps: np.ndarray, n: int = 5) -> list[LabelScore]:
    groups: dict[str, list[float]] = defaultdict(list)
    for key, ap in zip(keys, aps):
        if key:
            groups[key].append(float(ap))
    scored = [LabelScore(k, len(v), float(np.mean(v))) for k, v in groups.items()]
    return sorted(scored, key=lambda s: (s.map_at_k, s.label))[:n]
