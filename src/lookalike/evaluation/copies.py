"""`lookalike eval --copies DATASET_DIR`: does an edited copy find its original?

A sample of the set's images is copied with each transform of edits.py (parameters drawn from a
seeded generator, so a run can be repeated exactly). The whole set is indexed, minus a few
held-out images. Each copy is searched for (from its encoded bytes, as a user would upload
it); each held-out image is searched for too, as a query that has no copy in the library.

Reported: recall@1 and @10 of the original per transform; the score of the original versus
the best other image (what a copy threshold must separate); and how the match tiers fare:
a hit tiered exact/copy is right when it is the original, of its group, or one of the two
kinds of hit the labels leave out but are as right (copy_truth.py: an image with the copy's
own pixels, an unlabelled palette swap of the original); `copy_tier_precision_labelled_only`
trusts the labels alone. Of the wrong ones, those that are themselves a copy of the original
by the verifier's pixel comparison (a mirror or turn twin, a recolour) are counted too, as
`twins`: the query is as much an edited copy of them. Only small pictures are judged
(pixel_match); `copy_tier_precision_twins_right` counts them right.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.pictures import decode_image
from lookalike.search import Searcher
from lookalike.tuning import learn_if_due

from .copy_truth import LABELLED, Truth, is_twin
from .edits import TRANSFORMS, make_copy
from .metrics import read_groundtruth
from .retrieval import ListedFiles


@dataclass
class TransformScore:
    transform: str
    queries: int
    recall_at_1: float
    recall_at_10: float
    median_score: float


@dataclass
class CopyReport:
    dataset: str
    originals: int
    copies: int
    negatives: int
    recall_at_1: float
    recall_at_10: float
    per_transform: list[TransformScore]
    copy_scores: dict  # percentiles of the original's score, over copies that found it
    other_scores: dict  # percentiles of the best score of any other image
    tiers: dict  # precision / recall of the exact+copy tiers
    model: str = ""
    seconds: float = 0.0
    worst: list[dict] = field(default_factory=list)  # a few copies that missed, to look at
    # a few top hits tiered exact or copy that are not the original (nor of its group): the
    # copy (or held-out image: "copy" None) and that hit, and whether it is a twin
    # (copy_truth.is_twin)
    wrong_tiers: list[dict] = field(default_factory=list)
    # a few tiered top hits counted right that the ground truth does not name (copy_truth: the
    # copy's own pixels, a palette swap of the original): the copy or held-out image, the hit
    right_unlabelled: list[dict] = field(default_factory=list)
    verify: bool = False
    query_ms: dict = field(default_factory=dict)  # decode + embed + search (+ verify) per copy

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_copies(
    dataset: Path,
    *,
    sample: int = 100,
    negatives: int = 50,
    seed: int = 0,
    library_root: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,  # the model's weights, when not shipped nor downloadable
    progress: bool | None = False,
    tune: bool = True,  # learn the ranking as `lookalike index` would (tuning/tuner.py)
    verify: bool = False,
) -> CopyReport:
    started = time.monotonic()
    dataset = Path(dataset).resolve()
    rng, held_out, indexed, originals = split_for_copies(
        read_groundtruth(dataset), sample=sample, negatives=negatives, seed=seed
    )
    with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
        root = Path(library_root) if library_root else Path(tmp) / "library"
        with Library.open(root, write=True, model=model, weights=weights) as library:
            Indexer(library, progress=progress).run([ListedFiles(dataset, indexed)])
            if tune:  # as `lookalike index` does
                learn_if_due(library, progress=progress)
            report = _search_copies(
                library, dataset, originals, held_out, indexed + held_out, rng, verify
            )
    report.seconds = time.monotonic() - started
    return report


def split_for_copies(rows: list, *, sample: int, negatives: int, seed: int):
    """The seeded draw of an evaluation: (rng, held_out, indexed, originals). The same rng
    then makes the copies (each_copy), so a script that replays the evaluation
    (bench/pixel_match.py) makes the very same ones."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    negatives = min(negatives, len(rows) // 10)  # most of a small set stays indexed
    held_out = [rows[i] for i in order[:negatives]]
    indexed = [rows[i] for i in order[negatives:]]
    return rng, held_out, indexed, indexed[:sample]


def each_copy(dataset: Path, originals: list, by_source: dict, rng: random.Random):
    """(row, original's image id, transform, encoded copy, description) for every transform
    of every original that the library holds, in the evaluation's order."""
    for row in originals:
        original_id = by_source.get(str(dataset / row.path))
        if original_id is None:
            continue
        image = decode_image((dataset / row.path).read_bytes()).image
        for transform in TRANSFORMS:
            data, note = make_copy(image, transform, rng)
            yield row, original_id, transform, data, note


def _search_copies(library, dataset, originals, held_out, rows, rng, verify) -> CopyReport:
    """Search for every copy of `originals` (made with `rng`) and for every `held_out` image;
    `rows`: all of the set's, for their groups."""
    searcher = Searcher(library)
    records = library.catalog.images(library.catalog.vector_ids())
    by_source = {p.source: rid for rid, rec in records.items() for p in rec.places}
    group_of_id: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        rid = by_source.get(str(dataset / row.path))
        if rid is not None and row.group:
            group_of_id[rid].add(row.group)

    search = _CopySearch(library, searcher, Truth(library, records, group_of_id), dataset, verify)
    for row, original_id, transform, data, note in each_copy(dataset, originals, by_source, rng):
        search.search_copy(row, original_id, transform, data, note)
    for row in held_out:
        search.search_held_out(row)
    tally = search.tally
    return CopyReport(
        dataset=dataset.name,
        originals=len(originals),
        copies=len(tally.found1),
        negatives=len(held_out),
        recall_at_1=float(np.mean(tally.found1)) if tally.found1 else 0.0,
        recall_at_10=float(np.mean(tally.found10)) if tally.found10 else 0.0,
        per_transform=tally.per_transform(),
        copy_scores=_percentiles(tally.copy_scores, (1, 5, 25, 50)),
        other_scores=_percentiles(tally.other_scores, (50, 95, 99, 100)),
        tiers=tally.tiers(),
        model=library.embedder.model_id,
        worst=tally.worst,
        wrong_tiers=tally.wrong_tiers,
        right_unlabelled=tally.unlabelled,
        verify=verify,
        query_ms=_percentiles([t * 1000 for t in tally.query_seconds], (50, 99)),
    )


@dataclass
class _Tally:
    """What the searches found, as the report counts it."""

    found1: list[bool] = field(default_factory=list)  # per copy: the original ranked first
    found10: list[bool] = field(default_factory=list)  # and among the first ten
    per_t: dict = field(default_factory=lambda: defaultdict(lambda: {"r1": [], "r10": [], "score": []}))  # fmt: skip
    copy_scores: list[float] = field(default_factory=list)
    other_scores: list[float] = field(default_factory=list)
    query_seconds: list[float] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)
    wrong_tiers: list[dict] = field(default_factory=list)
    # tiered top hits counted right that the labels do not name
    unlabelled: list[dict] = field(default_factory=list)
    twins: int = 0
    right_on_copies: int = 0
    # tiered top hits counted right, by why
    right_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # and wrong: on copies, on held-out queries
    wrong_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def recall(self, transform: str, hits: list, original_id: int, same: set[int]) -> bool:
        """Count where a copy's original (or what is as right: `same`) came among its `hits`;
        whether first."""
        ids = [h.id for h in hits]
        r1, r10 = bool(ids) and ids[0] in same, bool(same & set(ids))
        self.found1.append(r1)
        self.found10.append(r10)
        stats = self.per_t[transform]
        stats["r1"].append(r1)
        stats["r10"].append(r10)
        original_hit = next((h for h in hits if h.id == original_id), None)
        if original_hit:
            self.copy_scores.append(original_hit.score)
            stats["score"].append(original_hit.score)
        others = [h.score for h in hits if h.id not in same]
        if others:
            self.other_scores.append(max(others))
        return r1

    def right(self, row, note: str | None, hit, reason: str) -> None:
        """Count a top hit tiered exact or copy that is right, and why."""
        self.right_by[reason] += 1
        if reason not in LABELLED and len(self.unlabelled) < 20:
            self.unlabelled.append(_unlabelled(row, note, hit, reason))

    def wrong(self, on: str, row, note: str | None, hit, twin: bool) -> None:
        """Count a top hit tiered exact or copy that is wrong, `on` "copies" or "held-out"."""
        self.wrong_by[on] += 1
        self.twins += twin
        if len(self.wrong_tiers) < 20:
            self.wrong_tiers.append(_wrong_tier(row, note, hit, twin))

    def per_transform(self) -> list[TransformScore]:
        return [
            TransformScore(
                t,
                len(s["r1"]),
                float(np.mean(s["r1"])),
                float(np.mean(s["r10"])),
                float(np.median(s["score"])) if s["score"] else 0.0,
            )
            for t, s in self.per_t.items()
        ]

    def tiers(self) -> dict:
        right, wrong = sum(self.right_by.values()), sum(self.wrong_by.values())
        tiered = right + wrong
        # what the ground truth labels: the original, its group, the same picture stored twice
        labelled = sum(n for reason, n in self.right_by.items() if reason in LABELLED)
        return {
            "copy_tier_precision": right / tiered if tiered else 1.0,
            # right only where the ground truth says so (LABELLED): a hit with the copy's own
            # pixels, or an unlabelled palette swap of the original, counts wrong
            "copy_tier_precision_labelled_only": labelled / tiered if tiered else 1.0,
            # with a hit that is a copy of the original by the verifier's own comparison (its
            # mirror image, a recolour: copy_truth.is_twin) counted right too
            "copy_tier_precision_twins_right": (right + self.twins) / tiered if tiered else 1.0,
            "copy_tier_recall": self.right_on_copies / len(self.found1) if self.found1 else 0.0,
            # tiered top hits counted right, by why (copy_truth)
            "right_copies_by": dict(self.right_by),
            "false_copies_on_copies": self.wrong_by["copies"],
            "false_copies_on_negatives": self.wrong_by["held-out"],
            "false_copies_that_are_twins": self.twins,
        }


@dataclass
class _CopySearch:
    """One evaluation's searches, each counted in `tally` as it is made."""

    library: Library
    searcher: Searcher
    truth: Truth
    dataset: Path
    verify: bool
    tally: _Tally = field(default_factory=_Tally)

    def search_copy(self, row, original_id: int, transform: str, data: bytes, note: str) -> None:
        """Search for one edited copy (its encoded `data`) of the image `original_id`."""
        tally = self.tally
        t0 = time.perf_counter()
        query = self.searcher.bytes_vector(data, details=not self.verify)
        hits = self.searcher.search_vector(query, 10, collapse=False, verify=self.verify)
        tally.query_seconds.append(time.perf_counter() - t0)
        why = {h.id: self.truth.why(h.record, query, row.group, original_id) for h in hits}
        same = {original_id} | {i for i, reason in why.items() if reason}
        r1 = tally.recall(transform, hits, original_id, same)
        top = hits[0] if hits else None
        if top is not None and top.tier in ("exact", "copy"):
            if top.id in same:
                tally.right(row, note, top, why.get(top.id) or "original")
                tally.right_on_copies += 1
            else:
                twin = is_twin(self.library, top.record, original_id=original_id)
                tally.wrong("copies", row, note, top, twin)
        if not r1 and len(tally.worst) < 10:
            top_place = top.record.first_place.display if top else None
            tally.worst.append({"original": row.path, "copy": note, "top": top_place})

    def search_held_out(self, row) -> None:
        """Search for a held-out image: no copy of it is in the library."""
        data = (self.dataset / row.path).read_bytes()
        query = self.searcher.bytes_vector(data, details=not self.verify)
        hits = self.searcher.search_vector(query, 1, collapse=False, verify=self.verify)
        if not hits:
            return
        image = decode_image(data).image
        reason = self.truth.why(hits[0].record, query, row.group, image=image)
        if not reason:
            self.tally.other_scores.append(hits[0].score)
        if hits[0].tier in ("exact", "copy"):
            if reason:
                self.tally.right(row, None, hits[0], reason)
            else:
                twin = is_twin(self.library, hits[0].record, image=image)
                self.tally.wrong("held-out", row, None, hits[0], twin)


def _unlabelled(row, note: str | None, hit, why: str) -> dict:
    top = hit.record.first_place.display if hit.record else None
    return {"original": row.path, "copy": note, "top": top, "tier": hit.tier, "why": why}


def _wrong_tier(row, note: str | None, hit, twin: bool) -> dict:
    top = hit.record.first_place.display if hit.record else None
    return {"original": row.path, "copy": note, "top": top, "tier": hit.tier, "twin": twin}


def _percentiles(values: list[float], qs) -> dict:
    if not values:
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in qs}
