"""How the small-picture verifier (src/lookalike/pixel_match.py) separates copies: its scores.

Makes the same copies as `lookalike eval --copies` (same seed, sample and held-out queries),
runs `search --verify` on each (which checks its verify.PIXEL_DEPTH best hits pixel by pixel:
these are small pictures), keeps each hit's vector score and pixel similarity, and then
replays the ranking rule of `search --verify` for a grid of thresholds: hits at or above the
match threshold first (tier "copy"), by similarity less its colour penalty; then hits at or
above the rank threshold, likewise; then the vector search's order. Prints recall@1 of the original (or a picture
of its group), the copy tier's precision (a tiered top hit that is not the original is wrong;
so is any tiered top hit of a held-out query, which has no copy in the library) and recall,
and the wrong tiered hits, to look at. MATCH_THRESHOLD and RANK_THRESHOLD come from here.

    python bench/pixel_match.py ../shared/bench-data/tango_icons ../shared/bench-data/rltiles
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.evaluation.copies import each_copy, split_for_copies
from lookalike.evaluation.metrics import read_groundtruth
from lookalike.evaluation.retrieval import ListedFiles
from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.search import Searcher, pixel_match
from lookalike.search.verify import PIXEL_DEPTH
from lookalike.tuning import learn_if_due


@dataclass
class Query:
    transform: str  # or "held-out"
    original: str | None
    candidates: list[tuple[int, float, float, float]]  # id, vector score, pixel similarity,
    # and its colour penalty
    right: set[int]  # candidates that count as found: the original and its group


def collect(dataset: Path, sample: int, seed: int) -> tuple[list[Query], dict, list]:
    rows = read_groundtruth(dataset)
    rng, held_out, indexed, originals = split_for_copies(
        rows, sample=sample, negatives=50, seed=seed
    )
    queries, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp), write=True) as library:
        Indexer(library, progress=False).run([ListedFiles(dataset, indexed)])
        learn_if_due(library, progress=False)  # the ranking `lookalike eval --copies` learns
        searcher = Searcher(library)
        records = library.catalog.images(library.catalog.vector_ids())
        by_source = {p.source: rid for rid, rec in records.items() for p in rec.places}
        names = {rid: str(Path(r.first_place.source).relative_to(dataset)) for rid, r in records.items()}  # fmt: skip
        group_of = {by_source.get(str(dataset / r.path)): r.group for r in rows}

        def candidates(data: bytes):
            """The hits of `search --verify` (PIXEL_DEPTH of them, all verified: these are
            small pictures), each with its vector score and pixel similarity."""
            query = searcher.bytes_vector(data)
            t0 = time.perf_counter()
            hits = searcher.search_vector(query, PIXEL_DEPTH, collapse=False, verify=True)
            seconds.append(time.perf_counter() - t0)
            return [(h.id, h.score, _similarity(h.verification), h.verification.colour_penalty) for h in hits if h.verification]  # fmt: skip

        def right(found, original_id, group):
            return {i for i, *_ in found if i == original_id or (group and group_of.get(i) == group)}  # fmt: skip

        for row, original_id, transform, data, _ in each_copy(dataset, originals, by_source, rng):
            found = candidates(data)
            queries.append(Query(transform, row.path, found, right(found, original_id, row.group)))  # fmt: skip
        for row in held_out:
            found = candidates((dataset / row.path).read_bytes())
            queries.append(Query("held-out", row.path, found, right(found, None, row.group)))
    return queries, names, seconds


def _similarity(v) -> float:
    """A hit's pixel similarity. Pairs where both pictures are 64 px or more are checked by
    keypoints, which say only matched (ranked as a copy) or not."""
    if v.similarity is not None:
        return v.similarity
    return 1.0 if v.matched else -1.0


def replay(
    queries: list[Query], match_threshold: float, rank_threshold: float, weight: float = 0.0
) -> dict:
    """search --verify's order for these thresholds: recall@1, copy-tier precision and recall.
    `weight`: hits ranked by pixels are ranked by similarity + weight x vector score."""
    found1, per_transform, right_tiers, wrong = [], defaultdict(list), 0, []
    for q in queries:
        if not q.candidates:
            continue

        def order(c):
            similarity = c[2]
            group = 0 if similarity >= match_threshold else 1 if similarity >= rank_threshold else 2  # fmt: skip
            return (group, -(similarity - c[3] + weight * c[1]) if group < 2 else -c[1])

        top = min(q.candidates, key=order)
        tiered = top[2] >= match_threshold
        hit = top[0] in q.right
        if q.transform != "held-out":
            found1.append(hit)
            per_transform[q.transform].append(hit)
        if tiered and hit:
            right_tiers += 1
        elif tiered:
            wrong.append((q.transform, q.original, top[0], round(top[2], 3)))
    tiered = right_tiers + len(wrong)
    return {
        "r1": float(np.mean(found1)),
        "precision": right_tiers / tiered if tiered else 1.0,
        "recall": right_tiers / len(found1),
        "per_transform": {t: float(np.mean(v)) for t, v in per_transform.items()},
        "wrong": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="pickle the scores here, to study them")
    args = parser.parse_args()
    for dataset in args.datasets:
        queries, names, seconds = collect(dataset.resolve(), args.sample, args.seed)
        copies = [q for q in queries if q.transform != "held-out"]
        print(f"\n{dataset.name}: {len(copies)} copies, {len(queries) - len(copies)} held-out "
              f"queries, {PIXEL_DEPTH} hits each; verified search "
              f"per query p50 {np.percentile(seconds, 50) * 1000:.1f} ms, "
              f"p99 {np.percentile(seconds, 99) * 1000:.1f} ms")  # fmt: skip
        present = defaultdict(list)
        for q in copies:
            present[q.transform].append(bool(q.right))
        print(f"original among the candidates: {np.mean([bool(q.right) for q in copies]):.3f}",
              {t: round(float(np.mean(v)), 2) for t, v in present.items()})  # fmt: skip
        if args.save:
            with open(args.save, "wb") as out:
                pickle.dump((queries, names), out)
        print("match  rank   R@1    copy-tier precision  recall")
        for match_threshold in (0.9, 0.93, 0.95, 0.97):
            for rank_threshold in sorted({0.6, 0.7, 0.9, match_threshold}):
                r = replay(queries, match_threshold, rank_threshold)
                print(f"{match_threshold:.2f}   {rank_threshold:.2f}   {r['r1']:.3f}  "
                      f"{r['precision']:.3f}                {r['recall']:.3f}")  # fmt: skip
        match, rank = pixel_match.MATCH_THRESHOLD, pixel_match.RANK_THRESHOLD
        print(f"{match:.2f} / {rank:.2f}, ranked by similarity + w x vector score: w, R@1, precision")  # fmt: skip
        for weight in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3):
            r = replay(queries, match, rank, weight)
            print(f"  {weight:.2f}  {r['r1']:.3f}  {r['precision']:.3f}")
        r = replay(queries, match, rank)
        print(f"per transform ({match:.2f} / {rank:.2f}):", {t: round(v, 2) for t, v in r["per_transform"].items()})  # fmt: skip
        for transform, original, top, similarity in r["wrong"]:
            print(f"  wrong copy tier: {transform} of {original} -> {names[top]} ({similarity})")


if __name__ == "__main__":
    main()
