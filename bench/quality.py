"""Leave-one-out retrieval quality of the shipped default embedder on ../shared/bench-data.

Run by hand; embeds every image of each set exactly as `lookalike index` does (decode_image +
the embedder's own preprocessor + embed), then scores exact search against the ground truth:

    python bench/quality.py [--data ../shared/bench-data] [--sets tango_icons,...]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lookalike.embed import DEFAULT_MODEL, create_embedder
from lookalike.evaluation.metrics import leave_one_out, read_groundtruth
from lookalike.pictures import decode_image

LABEL_OF = {  # which ground-truth column says "relevant" for each set
    "tango_icons": "group",
    "freeciv_flags": "group",
    "lpc_spritesheets": "group",
    "rltiles": "category",
    "opencv_pairs": "group",
}

_prep = None


def _init(model: str) -> None:
    global _prep
    _prep = create_embedder(model).preprocessor()


def _load(path: str) -> np.ndarray:
    data = Path(path).read_bytes()
    return _prep(decode_image(data, min_size=getattr(_prep, "size", None)).image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sets", default=",".join(LABEL_OF))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    embedder = create_embedder(args.model)
    print(f"model {embedder.model_id}, {embedder.dim} dims")
    print(
        f"{'set':18s} {'by':9s} {'queries':>7s} {'mAP@10':>7s} {'R@1':>6s} {'R@10':>6s} {'P@10':>6s}"
    )
    with ProcessPoolExecutor(2, initializer=_init, initargs=(args.model,)) as pool:
        for name in args.sets.split(","):
            t0 = time.perf_counter()
            rows = read_groundtruth(args.data / name)
            paths = [str(args.data / name / r.path) for r in rows]
            pixels = list(pool.map(_load, paths, chunksize=32))
            vectors = np.concatenate(
                [embedder.embed(np.stack(pixels[i : i + 64])) for i in range(0, len(pixels), 64)]
            )
            labels = [getattr(r, LABEL_OF[name]) for r in rows]
            s = leave_one_out(vectors, labels, k=10)
            print(
                f"{name:18s} {LABEL_OF[name]:9s} {s.queries:7d} {s.map_at_k:7.3f} "
                f"{s.recall_at_1:6.3f} {s.recall_at_k:6.3f} {s.precision_at_k:6.3f}"
                f"   ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
