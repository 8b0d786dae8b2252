"""Learned whitening (ranking/whitening.py) against plain cosine similarity and PCA whitening,
leave-one-out mAP@10, diffusion over the candidates (ranking/diffusion.py) on top, and the model's
details whitened with the vectors (run by hand; the tables are in docs/quality.md, 'Learned
whitening', 'Diffusion' and 'Details').

Each set's images and two edited views of each (tuning.edited_views) are embedded with the
default model once; then each variant is learned from them and scored on the images:

    python bench/whitening.py [--data ../shared/bench-data] [--sets tango_icons,...]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from lookalike.embed.effnet_lite0 import EffNetLite0
from lookalike.evaluation.metrics import (
    leave_one_out,
    leave_one_out_queries,
    read_groundtruth,
    score_rankings,
)
from lookalike.pictures import decode_image
from lookalike.ranking import learn_whitening, neighbour_pairs
from lookalike.ranking.diffusion import diffusion_order
from lookalike.tuning.tuner import edited_views

SETS = {"tango_icons": "group", "freeciv_flags": "group", "rltiles": "category"}


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embed(net: EffNetLite0, images: list) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, details) of `images`."""
    parts = [net.embed_images_with_details(images[i : i + 64]) for i in range(0, len(images), 64)]
    return np.concatenate([v for v, _ in parts]), np.concatenate([d for _, d in parts])


def pca_whitening(x: np.ndarray, shrink: float) -> np.ndarray:
    """Whitening from the images alone (no pairs): centre, principal axes, 1/sqrt(variance)."""
    centred = x - x.mean(axis=0)
    values, axes = np.linalg.eigh(centred.T @ centred / len(x))
    return l2n(centred @ (axes / np.sqrt(values + shrink * values.mean())))


def reranked_map(
    x: np.ndarray, w: np.ndarray, labels: list[str], depth: int, diffusion: dict | None = None
) -> float:
    """mAP@10 when the cosine search's best `depth` are ranked again under the whitening
    (what search/searcher.py does, WHITENED_DEPTH); with `diffusion` (diffusion_order's keywords),
    ordered by diffusion over their neighbourhood graph (ranking/diffusion.py)."""
    arr = np.array(labels, dtype=object)
    counts, queries = leave_one_out_queries(labels)
    ranked, qlabels, nrel = [], [], []
    for q in queries:
        sims = x @ x[q]
        sims[q] = -np.inf
        top = np.argsort(-sims)[:depth]
        if diffusion is None:
            top = top[np.argsort(-(w[top] @ w[q]))][:10]
        else:
            top = top[diffusion_order(w[q], w[top], **diffusion)][:10]
        ranked.append(list(arr[top]))
        qlabels.append(labels[q])
        nrel.append(counts[labels[q]] - 1)
    return score_rankings(ranked, qlabels, nrel, 10).map_at_k


def bench_set(net: EffNetLite0, folder: Path, by: str) -> dict[str, float]:
    """mAP@10 of each variant on one set."""
    rows = read_groundtruth(folder)
    images = [decode_image((folder / r.path).read_bytes(), keep_alpha=True).image for r in rows]
    labels = [getattr(r, by) for r in rows]
    rng = random.Random(0)
    views = [edited_views(image, rng) for image in images]
    (x, xd), (shrunk, sd), (cropped, cd) = (embed(net, batch) for batch in (images, [v[0] for v in views], [v[1] for v in views]))  # fmt: skip

    def learned(idx=slice(None), pairs=None, **kw) -> np.ndarray:
        pairs = pairs or [(x[idx], shrunk[idx]), (x[idx], cropped[idx])]
        return learn_whitening(x, pairs, model_id="", library_size=len(x), **kw).apply(x)

    def score(v: np.ndarray) -> float:
        return leave_one_out(v.astype(np.float32), labels).map_at_k

    results = {"cosine (no whitening)": score(x)}
    results["PCA whitening, shrink 1.0"] = score(pca_whitening(x, 1.0))
    results["learned, shrunk views only"] = score(learned(pairs=[(x, shrunk)]))
    for shrink in (0.03, 0.1, 0.3):
        for dims in (128, 256):
            results[f"learned, shrink {shrink}, {dims} dims"] = score(learned(shrink=shrink, dims=dims))  # fmt: skip
    default = learned()  # SHRINK, DIMS
    for depth in (100, 200):
        results[f"learned, cosine's best {depth} ranked again"] = reranked_map(x, default, labels, depth)  # fmt: skip
    for neighbours in (10, 20, 30):
        for alpha in (0.5, 0.6, 0.7):
            variant = f"learned, best 200, diffusion k {neighbours}, alpha {alpha}"
            results[variant] = reranked_map(x, default, labels, 200, dict(neighbours=neighbours, alpha=alpha))  # fmt: skip
    # the vectors and their details side by side (what `lookalike tune` learns for a model with
    # details); the candidates still come from the vectors' cosine similarity
    both = [np.hstack(pair) for pair in ((x, xd), (shrunk, sd), (cropped, cd))]
    detailed = learn_whitening(both[0], [(both[0], both[1]), (both[0], both[2])], model_id="",
                               library_size=len(x), detail_dim=xd.shape[1]).apply(x, xd)  # fmt: skip
    results["with details, cosine's best 200 ranked again"] = reranked_map(x, detailed, labels, 200)  # fmt: skip
    for alpha in (0.5, 0.6, 0.7):
        variant = f"with details, best 200, diffusion k 20, alpha {alpha}"
        results[variant] = reranked_map(x, detailed, labels, 200, dict(neighbours=20, alpha=alpha))  # fmt: skip
    # then learned again with the library's own look-alikes (neighbour_pairs, what tune does);
    # also learned from half the images only, the other half unseen, where look-alikes are
    # sparser and more of the pairs wrong
    for part, pick in (("", np.arange(len(x))), (" (learned from half)", np.sort(np.random.default_rng(0).permutation(len(x))[: len(x) // 2]))):  # fmt: skip
        edits = [(both[0][pick], both[1][pick]), (both[0][pick], both[2][pick])]
        for dims in (256, 512):  # ranking/whitening.py's DIMS, and twice that (tried, not adopted)
            first = learn_whitening(both[0][pick], edits, model_id="", library_size=len(pick), dims=dims)  # fmt: skip
            again = learn_whitening(both[0][pick], [*edits, neighbour_pairs(first, both[0][pick])], model_id="", library_size=len(pick), dims=dims)  # fmt: skip
            for name, whitening in (("with details", first), ("with details and look-alikes", again)):  # fmt: skip
                results[f"{name}{part}, {dims} dims, best 200, diffusion"] = reranked_map(x, whitening.map_whole(both[0]), labels, 200, dict(neighbours=20, alpha=0.6))  # fmt: skip
            if dims == 256:  # plan.WHITENED_DEPTH: 200, then 400
                for depth, k in ((300, 20), (400, 20), (800, 20), (400, 30), (400, 40)):
                    results[f"with details and look-alikes{part}, 256 dims, best {depth}, diffusion k {k}"] = reranked_map(x, again.map_whole(both[0]), labels, depth, dict(neighbours=k, alpha=0.6))  # fmt: skip
    for size in (300, 500):
        pick = np.random.default_rng(0).choice(len(x), min(size, len(x)), replace=False)
        results[f"learned from {size} images' views"] = score(learned(pick))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    net = EffNetLite0()
    for name in args.sets.split(","):
        for variant, value in bench_set(net, args.data / name, SETS[name]).items():
            print(f"{name:14s} {variant:42s} mAP@10 {value:.3f}", flush=True)


if __name__ == "__main__":
    main()
