"""Where a library's search goes wrong on a labelled set: which wrong hits rank above the right
ones, how far each kind of relevant image ranks, and what a perfect category filter would leave
(run by hand; the figures are in docs/quality.md, 'Where quality stands').

Build the library with the real pipeline first, then point this at it:

    lookalike eval ../shared/bench-data/tango_icons --keep-library /tmp/tango-library
    python bench/errors.py ../shared/bench-data/tango_icons /tmp/tango-library [--by group]

It queries every labelled image against the others (leave-one-out, as `lookalike eval`, the
same searches: its mAP@10 is eval's) and reports:
- wrong hits ranked above a query's last relevant hit in its top 10, by whether they share the
  query's `role` (tango_icons: its size) and `category`;
- per pair of roles (query's, relevant image's): how often the relevant one ranks first, in
  the top 3, below 10;
- mAP@10 by the query's role, and mAP@10 with every hit of another category dropped: what the
  search would score if it never confused categories, so what is left is confusion within one.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from lookalike.evaluation.metrics import read_groundtruth, score_rankings
from lookalike.library import Library
from lookalike.search import Searcher

DEPTH = 60  # hits read per query: enough to place most relevant images beyond the top 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("library", type=Path)
    parser.add_argument("--by", choices=("group", "category"), default="group")
    args = parser.parse_args()

    rows = read_groundtruth(args.dataset)
    with Library.open(args.library) as library:
        catalog = library.catalog
        records = catalog.images(catalog.vector_ids())
        by_source = {p.source: rid for rid, rec in records.items() for p in rec.places}
        # one picture may be several rows (the same file twice): each row is a query, as in
        # eval; a hit is relevant if any of its rows has the label, and is described by its first
        rows_of: dict[int, list] = defaultdict(list)
        for row in rows:
            image_id = by_source.get(os.path.abspath(args.dataset / row.path))
            if image_id is not None:
                rows_of[image_id].append(row)
        holders: dict[str, set[int]] = defaultdict(set)
        for image_id, its_rows in rows_of.items():
            for row in its_rows:
                holders[getattr(row, args.by)].add(image_id)

        searcher = Searcher(library)
        wrong = Counter()
        ranks: dict[tuple[str, str], list[int]] = defaultdict(list)
        ranked, filtered, labels, relevant, roles = [], [], [], [], []
        for image_id, row in [(i, r) for i, its_rows in rows_of.items() for r in its_rows]:
            label = getattr(row, args.by)
            if not label or len(holders[label] - {image_id}) == 0:
                continue
            hits = searcher.search_vector(searcher.id_vector(image_id), DEPTH, collapse=False)
            hit_rows = [rows_of[h.id][0] if h.id in rows_of else None for h in hits]
            is_relevant = [h.id in holders[label] for h in hits]
            last = max((i for i, x in enumerate(is_relevant[:10]) if x), default=-1)
            for r, x in zip(hit_rows[:last], is_relevant[:last]):
                if not x:
                    role = "same role" if r is not None and r.role == row.role else "other role"
                    same = r is not None and r.category == row.category
                    wrong[f"{role}, {'same' if same else 'other'} category"] += 1
            for place, (r, x) in enumerate(zip(hit_rows, is_relevant), 1):
                if x:
                    ranks[(row.role, r.role)].append(place)
            labels_of = [label if x else "" for x in is_relevant]
            ranked.append(labels_of[:10])
            same_category = [
                lab for lab, r in zip(labels_of, hit_rows) if r and r.category == row.category
            ]
            filtered.append(same_category[:10])
            labels.append(label)
            relevant.append(len(holders[label] - {image_id}))
            roles.append(row.role)

    scores = score_rankings(ranked, labels, relevant, 10)
    print(f"{args.dataset.name}, by {args.by}: {scores.queries} queries")
    print(f"mAP@10 {scores.map_at_k:.3f}  recall@1 {scores.recall_at_1:.3f}")
    if args.by == "group":  # by category, dropping other categories drops every wrong hit
        perfect = score_rankings(filtered, labels, relevant, 10).map_at_k
        print(f"mAP@10 with every hit of another category dropped: {perfect:.3f}")
    aps = scores.per_query_ap
    for role in sorted(set(roles)):
        mine = [ap for ap, r in zip(aps, roles) if r == role]
        print(f"  queries of role {role or '(none)'}: {len(mine)}, mAP@10 {np.mean(mine):.3f}")
    print("wrong hits ranked above a query's last relevant hit in its top 10:")
    for kind, n in wrong.most_common():
        print(f"  {kind}: {n}")
    print(f"where relevant images rank (of the best {DEPTH}; query's role -> relevant's):")
    for (query_role, role), places in sorted(ranks.items()):
        p = np.array(places)
        print(
            f"  {query_role or '-'} -> {role or '-'}: {len(p)}, first {np.mean(p == 1):.3f}, "
            f"top 3 {np.mean(p <= 3):.3f}, below 10 {np.mean(p > 10):.3f}"
        )


if __name__ == "__main__":
    main()
