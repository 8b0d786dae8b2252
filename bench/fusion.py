"""Exploring descriptor fusion and whitening on ../shared/bench-data (run by hand).

Computes, once per set, the network's three feature maps (as the shipped model preprocesses
them) and a few hand-made descriptors, then scores combinations, leave-one-out mAP@10:

    python bench/fusion.py [--sets tango_icons,...] [--cache bench/out/fusion-cache]
"""

from __future__ import annotations

import argparse
import itertools
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from lookalike.embed.effnet_lite0 import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS, SquarePreprocessor
from lookalike.evaluation.metrics import leave_one_out, read_groundtruth
from lookalike.pictures import decode_image

SETS = {
    "tango_icons": "group",
    "freeciv_flags": "group",
    "lpc_spritesheets": "group",
    "rltiles": "category",
}


def load(path: str):
    img = decode_image(Path(path).read_bytes(), min_size=192, keep_alpha=True).image
    rgba = img.convert("RGBA")
    grey_bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    rgb = Image.alpha_composite(grey_bg, rgba).convert("RGB")
    net = SquarePreprocessor()(rgb)
    grey = rgb.convert("L").convert("RGB")
    net_grey = SquarePreprocessor()(grey)
    tiny = {}
    for k in (8, 16):
        tiny[f"rgb{k}"] = np.asarray(rgb.resize((k, k), Image.BOX), np.float32).ravel()
        tiny[f"alpha{k}"] = np.asarray(
            rgba.getchannel("A").resize((k, k), Image.BOX), np.float32
        ).ravel()
        tiny[f"grey{k}"] = np.asarray(
            rgb.convert("L").resize((k, k), Image.BOX), np.float32
        ).ravel()
    hist = np.asarray(rgb.convert("HSV").resize((64, 64), Image.BOX), np.int32)
    h, s, v = hist[..., 0] // 32, hist[..., 1] // 64, hist[..., 2] // 64
    tiny["hsvhist"] = np.bincount((h * 16 + s * 4 + v).ravel(), minlength=128).astype(np.float32)
    return net, net_grey, tiny


def l2n(x):
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def gem(maps, p=3.0):
    return np.power(np.mean(np.power(np.maximum(maps, 0) + 1e-6, p), axis=(2, 3)), 1 / p)


def whiten(x, dims=None, eps=1e-3):
    """PCA-whitening learned from x itself: centre, rotate, scale by 1/sqrt(eigenvalue)."""
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / len(x)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][: dims or x.shape[1]]
    proj = vecs[:, order] / np.sqrt(vals[order] + eps * vals[order][0])
    return l2n(xc @ proj)


def centre(x):
    return l2n(x - x.mean(axis=0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--cache", type=Path, default=Path("bench/out/fusion-cache"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(str(WEIGHTS), so, providers=["CPUExecutionProvider"])

    def run(pix):
        x = ((pix.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).copy()
        outs = [session.run(None, {"input": x[i : i + 64]}) for i in range(0, len(x), 64)]
        return [np.concatenate([o[j] for o in outs]) for j in range(3)]

    for name in args.sets.split(","):
        cache = args.cache / f"{name}.npz"
        rows = read_groundtruth(args.data / name)
        labels = [getattr(r, SETS[name]) for r in rows]
        if cache.exists():
            f = dict(np.load(cache))
        else:
            with ProcessPoolExecutor(2) as pool:
                loaded = list(
                    pool.map(load, [str(args.data / name / r.path) for r in rows], chunksize=32)
                )
            s5, s6, head = run(np.stack([x[0] for x in loaded]))
            gs5, gs6, ghead = run(np.stack([x[1] for x in loaded]))
            f = {
                "s5": gem(s5),
                "s6": gem(s6),
                "head": gem(head),
                "gs6": gem(gs6),
                "ghead": gem(ghead),
                "s5avg": s5.mean(axis=(2, 3)),
                "s6avg": s6.mean(axis=(2, 3)),
            }
            for key in loaded[0][2]:
                f[key] = np.stack([x[2][key] for x in loaded])
            np.savez(cache, **f)

        def score(v, labels=labels):
            return leave_one_out(v.astype(np.float32), labels).map_at_k

        tiny = {
            k: centre(l2n(f[k] - f[k].mean(axis=1, keepdims=True)))
            for k in ("rgb8", "rgb16", "grey8", "grey16")
        }
        tiny["alpha16"] = centre(l2n(f["alpha16"] + 1e-3))
        tiny["hsvhist"] = l2n(np.sqrt(f["hsvhist"]))
        head = l2n(f["head"])
        results = {
            "head (shipped)": score(head),
            "head centred": score(centre(head)),
            "head whitened": score(whiten(head)),
            "head whitened 256": score(whiten(head, 256)),
            "s6 whitened": score(whiten(l2n(f["s6"]))),
            "s5+s6+head whitened": score(whiten(np.hstack([l2n(f["s5"]), l2n(f["s6"]), head]))),
            "grey head whitened": score(whiten(l2n(f["ghead"]))),
        }
        for k, v in tiny.items():
            results[f"tiny {k}"] = score(v)
        base = whiten(np.hstack([l2n(f["s5"]), l2n(f["s6"]), head]))
        for k, w in itertools.product(("rgb8", "rgb16", "hsvhist", "alpha16"), (0.5, 1.0)):
            results[f"whitened3 + {w} x {k}"] = score(l2n(np.hstack([base, w * tiny[k]])))
        for k, v in results.items():
            print(f"{name:17s} {k:35s} {v:.3f}", flush=True)


if __name__ == "__main__":
    main()
