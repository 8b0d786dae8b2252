"""Retrieval metrics over ground truth in the bench-data format.

A data set folder holds `groundtruth.csv` with columns path, group, category, role. Two images
are relevant to each other when they share the chosen label (group or category); an empty label
matches nothing. Metrics follow the usual definitions:

- AP@k = (1 / min(R, k)) * sum over ranks i <= k of precision@i * rel(i), R = relevant count;
- recall@k = 1 if any relevant image is in the top k (the "found it" rate);
- precision@k = relevant images in the top k / k.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GroundTruthRow:
    path: str
    group: str
    category: str
    role: str


def read_groundtruth(dataset_dir: Path) -> list[GroundTruthRow]:
    with open(Path(dataset_dir) / "groundtruth.csv", newline="", encoding="utf-8") as f:
        return [
            GroundTruthRow(r["path"], r.get("group", ""), r.get("category", ""), r.get("role", ""))
            for r in csv.DictReader(f)
        ]


@dataclass(frozen=True)
class RetrievalScores:
    queries: int
    map_at_k: float
    recall_at_1: float
    recall_at_k: float
    precision_at_k: float
    k: int
    per_query_ap: np.ndarray  # AP@k of each query, in query order


def score_rankings(
    ranked_labels: list[list[str]], query_labels: list[str], relevant_counts: list[int], k: int = 10
) -> RetrievalScores:
    """Score rankings (labels of the top results, query itself excluded) against query labels.

    `relevant_counts[i]` is how many images in the gallery share query i's label.
    """
    aps, r1, rk, pk = [], [], [], []
    for ranked, label, n_relevant in zip(ranked_labels, query_labels, relevant_counts):
        rel = np.array([lab == label for lab in ranked[:k]], dtype=np.float64)
        hits = np.cumsum(rel)
        precision_at_i = hits / np.arange(1, len(rel) + 1) if len(rel) else rel
        aps.append(float((precision_at_i * rel).sum() / min(n_relevant, k)))
        r1.append(float(rel[:1].sum() > 0))
        rk.append(float(rel.sum() > 0))
        pk.append(float(rel.sum() / k))
    aps_arr = np.array(aps)
    return RetrievalScores(
        queries=len(aps),
        map_at_k=float(aps_arr.mean()) if aps else 0.0,
        recall_at_1=float(np.mean(r1)) if r1 else 0.0,
        recall_at_k=float(np.mean(rk)) if rk else 0.0,
        precision_at_k=float(np.mean(pk)) if pk else 0.0,
        k=k,
        per_query_ap=aps_arr,
    )


def leave_one_out_queries(labels: list[str]) -> tuple[dict[str, int], list[int]]:
    """(images per label, the rows that are queries: a label shared with another image)."""
    counts: dict[str, int] = {}
    for label in labels:
        if label:
            counts[label] = counts.get(label, 0) + 1
    return counts, [i for i, label in enumerate(labels) if label and counts[label] > 1]


def leave_one_out(vectors: np.ndarray, labels: list[str], k: int = 10) -> RetrievalScores:
    """Every image with a non-empty label that has at least one other such image is a query
    against all other images (exact inner-product search over L2-normalised vectors)."""
    labels_arr = np.array(labels, dtype=object)
    counts, queries = leave_one_out_queries(labels)
    ranked, qlabels, nrel = [], [], []
    for start in range(0, len(queries), 512):
        chunk = queries[start : start + 512]
        sims = vectors[chunk] @ vectors.T
        sims[np.arange(len(chunk)), chunk] = -np.inf  # the query is not its own result
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for row, q in zip(top, chunk):
            ranked.append(list(labels_arr[row]))
            qlabels.append(labels[q])
            nrel.append(counts[labels[q]] - 1)
    return score_rankings(ranked, qlabels, nrel, k)
