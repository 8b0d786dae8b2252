"""Time of a verified search (`search --verify`), cold and warm, on ../shared/bench-data photos.

Indexes opencv_pairs into a temporary library, then searches cropped JPEG copies of its
pictures with verification: "cold" clears the candidates' feature cache before every query
(each candidate is read, decoded and described again), "warm" keeps it. Run by hand:

    python bench/verify_time.py [--data ../shared/bench-data/opencv_pairs] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.search import Searcher
from lookalike.search.verify import candidate_features
from lookalike.sources import FolderSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data/opencv_pairs"))
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        with Library.open(root, write=True) as library:
            Indexer(library, progress=False).run([FolderSource(args.data)])
        queries = []
        for path in sorted(args.data.rglob("*.jpg"))[: args.queries]:
            picture = Image.open(path).convert("RGB")
            w, h = picture.size
            buf = io.BytesIO()
            picture.crop((w // 20, h // 20, w - w // 10, h - h // 12)).save(buf, "JPEG", quality=40)
            queries.append(buf.getvalue())
        with Library.open(root) as library:
            searcher = Searcher(library)
            searcher.search_vector(searcher.bytes_vector(queries[0]), 10, verify=True)  # load
            for label, cold in (("cold", True), ("warm", False)):
                times = []
                for data in queries * args.repeat:
                    if cold:
                        candidate_features.clear()
                    t0 = time.perf_counter()
                    searcher.search_vector(searcher.bytes_vector(data), 10, verify=True)
                    times.append((time.perf_counter() - t0) * 1000)
                print(
                    f"{label}: {len(times)} verified searches, p50 {np.median(times):.1f} ms, "
                    f"p99 {np.percentile(times, 99):.1f} ms, max {max(times):.1f} ms"
                )


if __name__ == "__main__":
    main()
