"""Learning to tell variants apart (tuning/variants.py, ranking/whitening.py `variants`): mAP@10 of a
library's search with its ranking learned again under each setting (run by hand; the table is
in docs/quality.md, 'Variants').

Build the library with the real pipeline first, then point this at it (it rewrites the
library's whitening.npz, once per setting, and leaves the last one):

    lookalike eval ../shared/bench-data/tango_icons --keep-library /tmp/tango-library
    python bench/variant_pairs.py ../shared/bench-data/tango_icons /tmp/tango-library [--by group]

Each setting learns the ranking with `tuner.learn` (the code `lookalike tune` runs) and scores
it with the searches `lookalike eval` makes (its mAP@10). Settings: weight / stretch / the
share of pixels in common / "sizes" (learned only where most pictures have a look-alike of
another size, as tune does) or "any"; "none" learns without variants.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lookalike.evaluation.metrics import read_groundtruth
from lookalike.evaluation.retrieval import score_queries, split_roles
from lookalike.library import Library
from lookalike.ranking import whitening
from lookalike.tuning import tuner, variants

SETTINGS = [
    "none",
    "3/0.25/0.3/sizes",  # adopted
    "3/0.25/0.3/any",
    "3/0/0.3/sizes",
    "1/0.25/0.3/sizes",
    "10/0.25/0.3/sizes",
    "3/0.5/0.3/sizes",
    "3/0.25/0.5/sizes",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("library", type=Path)
    parser.add_argument("--by", choices=("group", "category"), default="group")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    rows = read_groundtruth(dataset)
    gallery, queries, query_gallery = split_roles(rows)
    defaults = (whitening.VARIANT_WEIGHT, whitening.VARIANT_STRETCH, variants.MIN_SAME)
    several_sizes = variants.SEVERAL_SIZES
    for setting in args.settings.split(","):
        weight, stretch, same, gate = (*defaults, "sizes")
        if setting == "none":  # no pair can pass
            same = 2.0
        else:
            weight, stretch, same, gate = setting.split("/")
        whitening.VARIANT_WEIGHT, whitening.VARIANT_STRETCH = float(weight), float(stretch)
        variants.MIN_SAME = float(same)
        # "any": learned whatever the sizes (the library's share of pictures with a
        # look-alike of another size is not asked)
        variants.SEVERAL_SIZES = several_sizes if gate == "sizes" else -1.0
        started = time.monotonic()
        with Library.open(args.library, write=True) as library:
            report = tuner.learn(library, progress=False)
            library.set_whitening(report.whitening)
            scores = score_queries(library, dataset, gallery, queries, args.by, query_gallery)
        print(
            f"{setting:22s} variant pairs {report.variant_pairs:5d}  mAP@10 {scores.map_at_k:.3f}"
            f"  recall@1 {scores.recall_at_1:.3f}  recall@10 {scores.recall_at_k:.3f}"
            f"  ({time.monotonic() - started:.0f}s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
