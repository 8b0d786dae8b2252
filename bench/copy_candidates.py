"""What each source of copy candidates adds to `lookalike eval --copies --verify`.

Runs the copy evaluation (same copies, same seed) with the candidates of small pictures found
inside a frame (decode.strip_frame) and as crops (TinyPictures.search_within) switched off or
on, in this process, one variant at a time, and prints recall@1, the copy tier's precision and
recall, and the time per query:

    python bench/copy_candidates.py ../shared/bench-data/rltiles ../shared/bench-data/tango_icons
    python bench/copy_candidates.py ../shared/bench-data/rltiles --variants both --crop-depth 10
    python bench/copy_candidates.py ../shared/bench-data/tango_icons --variants both --symmetry-penalty 0.01
    python bench/copy_candidates.py ../shared/bench-data/rltiles --variants both --colour-penalty 0

The other settings, each the module constant of that name: --symmetry-penalty,
--transpose-penalty and --colour-penalty (pixel_match: what a mirror or turn costs, what a
mirror with a quarter turn costs, what colours a hue-keeping edit
cannot explain cost in the order of copies), --offset-depth (tiny: candidates found only by
laying a crop off the cells' edges), --hue-depth (tiny: candidates found by the query's hue
turned), --rank-threshold (pixel_match: pixel similarity from which hits are ranked by it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.evaluation import evaluate_copies
from lookalike.search import candidates, pixel_match

VARIANTS = ("neither", "frame", "crops", "both")


def run(
    dataset: Path, variant: str, crop_depth: int, sample: int, seed: int, show_wrong: bool
) -> None:
    strip_frame, depth, offset_depth = (
        candidates.strip_frame,
        candidates.CROP_DEPTH,
        candidates.OFFSET_DEPTH,
    )
    try:
        if variant in ("neither", "crops"):
            candidates.strip_frame = lambda image: None
        if variant not in ("crops", "both"):
            candidates.CROP_DEPTH = candidates.OFFSET_DEPTH = 0
        else:
            candidates.CROP_DEPTH = crop_depth
        report = evaluate_copies(dataset, sample=sample, seed=seed, verify=True)
    finally:
        candidates.strip_frame, candidates.CROP_DEPTH, candidates.OFFSET_DEPTH = (
            strip_frame,
            depth,
            offset_depth,
        )
    tiers, ms = report.tiers, report.query_ms
    per = " ".join(f"{t.transform} {t.recall_at_1:.2f}" for t in report.per_transform)
    print(f"{dataset.name:14s} {variant:8s} (crops' best {crop_depth}): R@1 "
          f"{report.recall_at_1:.4f}, copy tier {tiers['copy_tier_precision']:.4f} / "
          f"{tiers['copy_tier_recall']:.4f}, p50 {ms['p50']:.1f} ms, p99 {ms['p99']:.1f} ms"
          f"\n    {per}", flush=True)  # fmt: skip
    if show_wrong:
        for wrong in report.wrong_tiers:
            print(f"    wrong {wrong['tier']}: {wrong['copy'] or 'held out'} of {wrong['original']} -> {wrong['top']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--crop-depth", type=int, default=candidates.CROP_DEPTH)
    parser.add_argument("--symmetry-penalty", type=float, default=pixel_match.SYMMETRY_PENALTY)
    parser.add_argument(
        "--transpose-penalty", type=float, default=None, help="default: twice --symmetry-penalty"
    )
    parser.add_argument("--colour-penalty", type=float, default=pixel_match.COLOUR_PENALTY)
    parser.add_argument("--rank-threshold", type=float, default=pixel_match.RANK_THRESHOLD)
    parser.add_argument("--offset-depth", type=int, default=candidates.OFFSET_DEPTH)
    parser.add_argument("--hue-depth", type=int, default=candidates.HUE_DEPTH)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-wrong", action="store_true", help="list the wrongly tiered hits")
    args = parser.parse_args()
    pixel_match.SYMMETRY_PENALTY = args.symmetry_penalty
    pixel_match.TRANSPOSE_PENALTY = args.transpose_penalty or 2 * args.symmetry_penalty
    pixel_match.COLOUR_PENALTY = args.colour_penalty
    pixel_match.RANK_THRESHOLD = args.rank_threshold
    candidates.OFFSET_DEPTH, candidates.HUE_DEPTH = args.offset_depth, args.hue_depth
    print(f"pixel_match: SYMMETRY_PENALTY {pixel_match.SYMMETRY_PENALTY}, TRANSPOSE_PENALTY "
          f"{pixel_match.TRANSPOSE_PENALTY}, COLOUR_PENALTY "
          f"{pixel_match.COLOUR_PENALTY}, RANK_THRESHOLD {pixel_match.RANK_THRESHOLD}; tiny: "
          f"OFFSET_DEPTH {candidates.OFFSET_DEPTH}, HUE_DEPTH {candidates.HUE_DEPTH}")  # fmt: skip
    for dataset in args.datasets:
        for variant in args.variants:
            run(
                dataset.resolve(), variant, args.crop_depth, args.sample, args.seed, args.show_wrong
            )


if __name__ == "__main__":
    main()
