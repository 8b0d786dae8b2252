"""Preprocessing and query-side variants of the default descriptor, leave-one-out mAP@10
(run by hand; the tables are in docs/quality.md, 'Second round').

Each variant changes what the network sees (trimmed margins, blur, a low-resolution second
view, a solid-border crop) or how vectors are used (query expansion, database-side
augmentation); all use the shipped ONNX network with GeM pooling as effnet-lite0 does:

    python bench/variants.py [--data ../shared/bench-data] [--sets tango_icons,...]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from lookalike.embed.effnet_lite0 import EffNetLite0
from lookalike.evaluation.metrics import leave_one_out, read_groundtruth
from lookalike.pictures import decode_image, to_rgb, trim_transparent

SETS = {
    "tango_icons": "group",
    "freeciv_flags": "group",
    "rltiles": "category",
    "opencv_pairs": "group",
}
SIZE = 192


def _trim_solid(image: Image.Image, tolerance: int = 32) -> Image.Image:
    pixels = np.asarray(image, dtype=np.int16)
    differs = (np.abs(pixels - pixels[0, 0]) > tolerance).any(axis=-1)
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if not len(rows):
        return image
    return image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def views(path: str) -> dict[str, np.ndarray]:
    decoded = decode_image(Path(path).read_bytes(), min_size=SIZE, keep_alpha=True).image
    whole = to_rgb(decoded)
    trimmed = to_rgb(trim_transparent(decoded))

    def square(image: Image.Image) -> Image.Image:
        return image.resize((SIZE, SIZE), Image.BILINEAR, reducing_gap=3.0)

    enlarged = SIZE / min(trimmed.size)
    sigma = 0.25 * enlarged
    blurred = square(trimmed)
    if sigma >= 0.5:
        blurred = blurred.filter(ImageFilter.GaussianBlur(sigma))
    return {
        "squash (v1)": np.asarray(square(whole)),
        "trim (v2)": np.asarray(square(trimmed)),
        "trim + blur 0.25/enlargement": np.asarray(blurred),
        "trim + solid-border crop": np.asarray(square(_trim_solid(trimmed))),
        "16 px view": np.asarray(square(trimmed.resize((16, 16), Image.BOX))),
    }


def l2n(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)).astype(np.float32)


def neighbour_average(x: np.ndarray, n: int, alpha: float = 3.0) -> np.ndarray:
    """Each vector plus its n nearest others weighted by similarity^alpha: alpha-query
    expansion when the result is the query, database-side augmentation when it is indexed."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :n]
    weights = np.take_along_axis(sims, top, 1).clip(0) ** alpha
    return l2n(x + (weights[:, :, None] * x[top]).sum(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    embedder = EffNetLite0()
    for name in args.sets.split(","):
        rows = read_groundtruth(args.data / name)
        labels = [getattr(r, SETS[name]) for r in rows]
        with ProcessPoolExecutor(2) as pool:
            loaded = list(pool.map(views, [str(args.data / name / r.path) for r in rows]))
        vectors = {
            key: np.concatenate(
                [
                    embedder.embed(np.stack([v[key] for v in loaded[i : i + 64]]))
                    for i in range(0, len(loaded), 64)
                ]
            )
            for key in loaded[0]
        }
        trim = vectors["trim (v2)"]
        scores = {key: leave_one_out(v, labels).map_at_k for key, v in vectors.items()}
        scores["trim + 0.5 x 16 px view (two passes)"] = leave_one_out(
            l2n(trim + 0.5 * vectors["16 px view"]), labels
        ).map_at_k
        scores["trim, database-side augmentation n=2"] = leave_one_out(
            neighbour_average(trim, 2), labels
        ).map_at_k
        print(f"\n{name} (by {SETS[name]}), mAP@10")
        for key, value in scores.items():
            print(f"  {key:42s} {value:.3f}", flush=True)


if __name__ == "__main__":
    main()
