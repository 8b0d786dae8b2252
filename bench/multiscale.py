"""Multi-scale and flip averaging of the default descriptor (effnet-lite0@3), leave-one-out
mAP@10: the picture embedded at 160, 192 (the default) and 224 px, or mirrored, and the
vectors summed (run by hand; the table is in docs/quality.md, 'Where quality stands').

    python bench/multiscale.py [--data ../shared/bench-data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.embed.effnet_lite0 import EffNetLite0
from lookalike.evaluation.metrics import leave_one_out, read_groundtruth
from lookalike.pictures import decode_image

SETS = {"tango_icons": "group", "freeciv_flags": "group", "rltiles": "category"}


class EffNetLite0At160(EffNetLite0):
    SIZE = 160


class EffNetLite0At224(EffNetLite0):
    SIZE = 224


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embed(net: EffNetLite0, images: list[Image.Image]) -> np.ndarray:
    return np.concatenate([net.embed_images(images[i : i + 64]) for i in range(0, len(images), 64)])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    args = parser.parse_args()
    nets = {160: EffNetLite0At160(), 192: EffNetLite0(), 224: EffNetLite0At224()}
    for name, by in SETS.items():
        rows = read_groundtruth(args.data / name)
        images = [decode_image((args.data / name / r.path).read_bytes(), keep_alpha=True).image for r in rows]  # fmt: skip
        labels = [getattr(r, by) for r in rows]
        v = {size: embed(net, images) for size, net in nets.items()}
        mirrored = embed(nets[192], [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images])  # fmt: skip
        variants = {
            "192 (default)": v[192],
            "192 + mirrored": l2n(v[192] + mirrored),
            "160": v[160],
            "224": v[224],
            "160 + 192": l2n(v[160] + v[192]),
            "192 + 224": l2n(v[192] + v[224]),
            "160 + 192 + 224": l2n(v[160] + v[192] + v[224]),
        }
        for variant, vectors in variants.items():
            scores = leave_one_out(vectors.astype(np.float32), labels)
            print(f"{name:14s} {variant:16s} mAP@10 {scores.map_at_k:.3f}", flush=True)


if __name__ == "__main__":
    main()
