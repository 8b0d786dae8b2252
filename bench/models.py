"""Embedding speed of every model on this machine's CPU (docs/models.md records the results).

    python bench/models.py                      # random weights: speed does not depend on them
    python bench/models.py --weights-dir DIR    # the real files, where you have them

For each model: the time to load it, then images per second through the model alone
(`Embedder.embed` on preprocessed batches; decoding and preprocessing run in the indexing
workers, apart from the model) and through preprocessing + model in one process, over
`--images` pictures of 640 x 480 in batches of `--batch`, after one warm-up batch, and the CPU
time the model takes per image (all threads; less sensitive than wall time to other jobs on a
shared machine). CLIP also gets text queries per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from lookalike.embed import MODELS, create_embedder  # noqa: E402


def pictures(n: int) -> list[Image.Image]:
    from tests.conftest import make_picture

    return [make_picture(seed, (640, 480)) for seed in range(n)]


def bench_model(name: str, weights: Path | None, images, batch: int, threads: int) -> dict:
    started = time.perf_counter()
    embedder = create_embedder(name, weights=weights, threads=threads)
    loaded = time.perf_counter() - started
    prep = embedder.preprocessor()
    started = time.perf_counter()
    inputs = np.stack([prep(im) for im in images])
    prep_s = time.perf_counter() - started
    embedder.embed(inputs[:batch])  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(inputs), batch):
        embedder.embed(inputs[i : i + batch])
    model_s = time.perf_counter() - started
    # CPU time (all threads) per image: steadier than wall time on a machine shared with others
    cpu_ms = (time.process_time() - cpu_started) / len(images) * 1000
    row = {
        "model": name,
        "dim": embedder.dim,
        "load_s": round(loaded, 2),
        "model_img_per_s": round(len(images) / model_s, 1),
        "prep_and_model_img_per_s": round(len(images) / (model_s + prep_s), 1),
        "model_cpu_ms_per_img": round(cpu_ms, 1),
    }
    if embedder.supports_text:
        texts = [f"a picture of a red dragon number {i}" for i in range(64)]
        embedder.embed_text(texts[:8])
        started = time.perf_counter()
        for text in texts:
            embedder.embed_text([text])
        row["text_queries_per_s"] = round(len(texts) / (time.perf_counter() - started), 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--weights-dir", type=Path, help="real weight files (default: random)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    images = pictures(args.images)
    print(f"# {os.cpu_count()} CPUs, {args.threads} threads, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            weights = args.weights_dir
            if weights is None and MODELS[name].extra is not None:
                from tests.model_weights import write_random_weights

                weights = write_random_weights(name, Path(scratch))
            print(json.dumps(bench_model(name, weights, images, args.batch, args.threads)))


if __name__ == "__main__":
    main()
