"""Compare candidate descriptors of the shipped EfficientNet-Lite0 graph on ../shared/bench-data.

Run by hand; prints mAP@10 (leave-one-out) per data set for every combination of
preprocessing x layer x pooling tried. This is how the default descriptor was chosen
(see docs/quality.md).

    python bench/descriptors.py [--data ../shared/bench-data] [--sizes 224] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from lookalike.evaluation.metrics import leave_one_out, read_groundtruth
from lookalike.pictures.decode import BACKGROUND_RGB, decode_image

ONNX = Path(__file__).resolve().parents[1] / "src/lookalike/embed/weights/effnet-lite0.onnx"
SETS = {  # set -> label used as relevance
    "tango_icons": "group",
    "freeciv_flags": "group",
    "lpc_spritesheets": "group",
    "rltiles": "category",
    "opencv_pairs": "group",
}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def fit(image: Image.Image, size: int, mode: str, resample: int) -> Image.Image:
    w, h = image.size
    if mode == "squash":
        return image.resize((size, size), resample)
    if mode == "crop":
        s = size / min(w, h)
        im = image.resize((max(size, round(w * s)), max(size, round(h * s))), resample)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        return im.crop((left, top, left + size, top + size))
    s = size / max(w, h)  # pad
    im = image.resize((max(1, round(w * s)), max(1, round(h * s))), resample)
    canvas = Image.new("RGB", (size, size), BACKGROUND_RGB)
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return canvas


def load(args):
    path, size, mode, resample = args
    img = decode_image(Path(path).read_bytes(), min_size=size).image
    grey = mode.endswith("-grey")
    img = fit(img, size, mode.removesuffix("-grey"), resample)
    if grey:
        img = img.convert("L").convert("RGB")
    return np.asarray(img, dtype=np.uint8)


COPY_TRANSFORMS = ("jpeg75", "jpeg92", "webp80", "half", "double", "crop90")


def make_copy(img: Image.Image, transform: str) -> Image.Image:
    import io

    def recode(fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return decode_image(buf.getvalue()).image

    w, h = img.size
    if transform == "jpeg75":
        return recode("JPEG", quality=75)
    if transform == "jpeg92":
        return recode("JPEG", quality=92)
    if transform == "webp80":
        return recode("WEBP", quality=80)
    if transform == "half":
        return img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)
    if transform == "double":
        return img.resize((w * 2, h * 2), Image.LANCZOS)
    if transform == "crop90":
        dx, dy = round(w * 0.05), round(h * 0.05)
        return img.crop((dx, dy, w - dx, h - dy))
    raise ValueError(transform)


def load_copy(args):
    path, size, mode, resample, transform = args
    img = make_copy(decode_image(Path(path).read_bytes()).image, transform)
    grey = mode.endswith("-grey")
    img = fit(img, size, mode.removesuffix("-grey"), resample)
    if grey:
        img = img.convert("L").convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def gem(maps: np.ndarray, p: float) -> np.ndarray:
    return (np.clip(maps, 1e-6, None) ** p).mean(axis=(2, 3)) ** (1.0 / p)


def l2n(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


POOLINGS = {
    "head-relu6-avg": lambda o: np.clip(o["head"], 0, 6).mean(axis=(2, 3)),
    "head-pre-avg": lambda o: o["head"].mean(axis=(2, 3)),
    "head-relu-gem3": lambda o: gem(np.maximum(o["head"], 0), 3.0),
    "head-pre-max": lambda o: o["head"].max(axis=(2, 3)),
    "stage6-avg": lambda o: o["stage6"].mean(axis=(2, 3)),
    "stage6-gem3": lambda o: gem(np.maximum(o["stage6"], 0), 3.0),
    "stage5-avg": lambda o: o["stage5"].mean(axis=(2, 3)),
    "stage5+6-avg": lambda o: np.hstack(
        [l2n(o["stage5"].mean(axis=(2, 3))), l2n(o["stage6"].mean(axis=(2, 3)))]
    ),
    "s6avg+headpre": lambda o: np.hstack(
        [l2n(o["stage6"].mean(axis=(2, 3))), l2n(o["head"].mean(axis=(2, 3)))]
    ),
}


def report_copies(set_name, pool_name, originals, copies, picked, labels) -> None:
    """Copy -> original retrieval among the whole set, per transform; and the similarity of
    copies to their original versus each original's most similar *other* image (outside its
    group): the margin a near-duplicate threshold has to live in."""
    t = len(COPY_TRANSFORMS)
    sims = copies @ originals.T
    parts = []
    own = []
    for j, i in enumerate(np.repeat(picked, t)):
        own.append(sims[j, i])
    own = np.array(own).reshape(len(picked), t)
    top1 = sims.argmax(axis=1).reshape(len(picked), t) == np.array(picked)[:, None]
    for k, name in enumerate(COPY_TRANSFORMS):
        parts.append(f"{name}:R1={top1[:, k].mean():.2f},cos={np.median(own[:, k]):.3f}")
    osims = originals[picked] @ originals.T
    for row, i in enumerate(picked):
        osims[row, i] = -1
        if labels[i]:
            osims[row, [n for n, lab in enumerate(labels) if lab == labels[i]]] = -1
    hardest = osims.max(axis=1)
    rates = " ".join(
        f"t={t:.2f}:copies>{(own >= t).mean():.2f},others>{(hardest >= t).mean():.3f}"
        for t in (0.90, 0.93, 0.95, 0.97)
    )
    print(f"{set_name:17s} THRESH {pool_name:22s} {rates}", flush=True)
    print(
        f"{set_name:17s} COPIES {pool_name:22s} "
        + " ".join(parts)
        + f" | copy-cos p5={np.percentile(own, 5):.3f} | other-cos p95={np.percentile(hardest, 95):.3f} max={hardest.max():.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sizes", default="224")
    parser.add_argument("--modes", default="pad,squash,crop")
    parser.add_argument("--norms", default="imagenet,tf")
    parser.add_argument("--resample", default="bilinear")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--poolings", default=",".join(POOLINGS))
    parser.add_argument("--centre", action="store_true", help="also try mean-centring")
    parser.add_argument(
        "--copies",
        type=int,
        default=0,
        help="also measure copy detection: N originals per set x COPY_TRANSFORMS",
    )
    args = parser.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(str(ONNX), so, providers=["CPUExecutionProvider"])
    resamples = {
        "bilinear": Image.BILINEAR,
        "bicubic": Image.BICUBIC,
        "nearest": Image.NEAREST,
        "lanczos": Image.LANCZOS,
        "box": Image.BOX,
    }
    results = []
    with ProcessPoolExecutor(2) as pool:
        for set_name in args.sets.split(","):
            rows = read_groundtruth(args.data / set_name)
            labels = [getattr(r, SETS[set_name]) for r in rows]
            paths = [str(args.data / set_name / r.path) for r in rows]
            for size, mode, rs in itertools.product(
                map(int, args.sizes.split(",")), args.modes.split(","), args.resample.split(",")
            ):
                t0 = time.perf_counter()
                pixels = np.stack(
                    list(
                        pool.map(
                            load, [(p, size, mode, resamples[rs]) for p in paths], chunksize=32
                        )
                    )
                )
                picked, copy_pixels = [], None
                if args.copies:
                    rng = np.random.default_rng(0)
                    picked = sorted(
                        rng.choice(len(paths), min(args.copies, len(paths)), replace=False)
                    )
                    jobs = [
                        (paths[i], size, mode, resamples[rs], t)
                        for i in picked
                        for t in COPY_TRANSFORMS
                    ]
                    copy_pixels = np.stack(list(pool.map(load_copy, jobs, chunksize=16)))
                for norm in args.norms.split(","):

                    def run_net(pix, norm=norm):
                        x = pix.astype(np.float32)
                        x = (
                            (x - IMAGENET_MEAN) / IMAGENET_STD
                            if norm == "imagenet"
                            else (x - 127.0) / 128.0
                        )
                        x = x.transpose(0, 3, 1, 2).copy()
                        outs = {n: [] for n in ("stage5", "stage6", "head")}
                        for i in range(0, len(x), 64):
                            for n, o in zip(
                                ("stage5", "stage6", "head"),
                                session.run(None, {"input": x[i : i + 64]}),
                            ):
                                outs[n].append(o)
                        return {n: np.concatenate(v) for n, v in outs.items()}

                    outs = run_net(pixels)
                    copy_outs = run_net(copy_pixels) if copy_pixels is not None else None
                    for pool_name in args.poolings.split(","):
                        if copy_outs is not None:
                            report_copies(
                                set_name,
                                pool_name,
                                l2n(POOLINGS[pool_name](outs)),
                                l2n(POOLINGS[pool_name](copy_outs)),
                                picked,
                                labels,
                            )
                        v = POOLINGS[pool_name](outs)
                        variants = [("", l2n(v))]
                        if args.centre:
                            variants.append(("+centre", l2n(l2n(v) - l2n(v).mean(axis=0))))
                        for suffix, vec in variants:
                            s = leave_one_out(vec.astype(np.float32), labels)
                            line = f"{set_name:17s} {size:4d} {mode:6s} {rs:8s} {norm:8s} {pool_name + suffix:22s} mAP@10={s.map_at_k:.3f} R@1={s.recall_at_1:.3f}"
                            print(line, flush=True)
                            results.append(line)
                print(
                    f"# {set_name} {size} {mode} {rs}: {time.perf_counter() - t0:.0f}s", flush=True
                )


if __name__ == "__main__":
    main()
