"""End-to-end indexing throughput and search latency, on ../shared/bench-data. Run by hand:

    python bench/ingest.py [--data ../shared/bench-data] [--queries 200] [--out bench/out]

1. Throughput: for each set, a fresh library; `lookalike index` in-process, timed from opening
   the library to the saved index (model load and worker start-up included). Sets: tango_icons
   (16-32 px icons), rltiles (32 px tiles), lpc_spritesheets (832x1344 sprite sheets),
   freeciv_flags, and photos500: ~500-px JPEG photos cut from the opencv_pairs photos.
2. Search latency at 10k images: one library holding every set above plus flipped copies of
   the icons and tiles (>= 10,000 images); then single queries one after another, as
   `lookalike search` runs them: decode + embed + index search + collapse + catalog lookup.
   Reported for file queries and for id:N queries.
3. ANN check: the IVF layout forced onto that library's real vectors, recall@10 vs exact.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lookalike.index import FaissIndex
from lookalike.ingest import index_paths
from lookalike.library import Library
from lookalike.search import Searcher

SETS = ["tango_icons", "rltiles", "lpc_spritesheets", "freeciv_flags"]


def make_photos(data: Path, target: Path, count: int = 300, seed: int = 0) -> Path:
    """~500-px JPEG photos: random crops of the opencv_pairs photos, re-encoded at q90."""
    rng = random.Random(seed)
    folder = data / "opencv_pairs" / "images"
    sources = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg")]
    target.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        image = Image.open(rng.choice(sources)).convert("RGB")
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        crop = image.crop((x, y, x + cw, y + ch))
        crop.thumbnail((500, 500), Image.LANCZOS)
        if max(crop.size) < 500:
            scale = 500 / max(crop.size)
            crop = crop.resize(
                (round(crop.width * scale), round(crop.height * scale)), Image.LANCZOS
            )
        crop.save(target / f"photo{n:04d}.jpg", quality=90)
    return target


def make_flipped(data: Path, target: Path, sets=("tango_icons", "rltiles")) -> Path:
    for name in sets:
        for path in sorted((data / name).rglob("*")):
            if path.suffix.lower() in (".png", ".bmp"):
                out = target / name / path.relative_to(data / name)
                out.parent.mkdir(parents=True, exist_ok=True)
                ImageOps.mirror(Image.open(path).convert("RGBA")).save(out.with_suffix(".png"))
    return target


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in (".png", ".bmp", ".jpg"))


def throughput(name: str, folder: Path, scratch: Path) -> dict:
    library_path = scratch / f"lib-{name}"
    started = time.perf_counter()
    with Library.open(library_path, write=True) as library:
        report = index_paths(library, [folder], progress=False)
    seconds = time.perf_counter() - started
    return {
        "set": name,
        "images": report.added + report.known + report.failed,
        "failed": report.failed,
        "seconds": seconds,
        "per_second": (report.added + report.known + report.failed) / seconds,
    }


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):6.1f} ms   p99 {np.percentile(ms, 99):6.1f} ms   mean {ms.mean():6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  onnx threads: {os.cpu_count()}  workers: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        scratch = Path(tmp)
        photos = make_photos(args.data, scratch / "photos500")
        folders = {name: args.data / name for name in SETS}
        folders["photos500"] = photos

        if not args.skip_throughput:
            print("\n== indexing throughput (end to end, fresh library per set)")
            for name, folder in folders.items():
                r = throughput(name, folder, scratch)
                print(
                    f"{r['set']:18s} {r['images']:6d} images  {r['seconds']:7.1f} s  "
                    f"{r['per_second']:6.1f} images/s  ({r['failed']} failed)",
                    flush=True,
                )
                shutil.rmtree(scratch / f"lib-{name}")

        print("\n== search latency at 10k images")
        flipped = make_flipped(args.data, scratch / "flipped")
        library_path = scratch / "lib-10k"
        started = time.perf_counter()
        with Library.open(library_path, write=True) as library:
            report = index_paths(library, [*folders.values(), flipped], progress=False)
        print(f"built: {report.added} images in {time.perf_counter() - started:.0f} s")

        with Library.open(library_path) as library:
            searcher = Searcher(library)
            _ = library.embedder, library.index  # loaded once, as one CLI call does
            print(f"library: {len(library.index)} vectors, index {library.index.kind}")
            rng = random.Random(1)
            files = [
                p
                for f in folders.values()
                for p in f.rglob("*")
                if p.suffix.lower() in (".png", ".bmp", ".jpg")
            ]
            queries = rng.sample(files, args.queries)
            searcher.search([str(queries[0])], 10)  # warm-up
            timings = []
            for q in queries:
                t0 = time.perf_counter()
                (result,) = searcher.search([str(q)], 10)
                timings.append(time.perf_counter() - t0)
                assert result.error is None, result.error
            print(f"file queries ({len(queries)}):  {percentiles(timings)}")
            ids = rng.sample(library.catalog.vector_ids().tolist(), args.queries)
            timings = []
            for image_id in ids:
                t0 = time.perf_counter()
                searcher.search([f"id:{image_id}"], 10)
                timings.append(time.perf_counter() - t0)
            print(f"id queries ({len(ids)}):    {percentiles(timings)}")
            ann_check(library, rng)


def ann_check(library: Library, rng: random.Random, queries: int = 500) -> None:
    """The IVF layout (used from 50k vectors on) forced onto these real vectors: recall@10
    against exact search, each query a library image with itself left out of both answers."""
    chunks = list(library.catalog.iter_vectors())
    ids = np.concatenate([c[0] for c in chunks])
    vectors = np.concatenate([c[1] for c in chunks])
    exact = FaissIndex.build(ids, vectors, ann_threshold=10**9)
    started = time.perf_counter()
    ivf = FaissIndex.build(ids, vectors, ann_threshold=0)
    built = time.perf_counter() - started
    rows = rng.sample(range(len(ids)), queries)
    q = vectors[rows]

    def top10(index):
        t0 = time.perf_counter()
        _, found = index.search(q, 11)
        per_query = (time.perf_counter() - t0) / len(q)
        return [[i for i in f if i != ids[r]][:10] for f, r in zip(found, rows)], per_query

    truth, exact_time = top10(exact)
    got, ivf_time = top10(ivf)
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
    print(
        f"ANN check: {ivf.kind} built in {built:.1f} s; recall@10 vs exact {recall:.3f} "
        f"({queries} queries); search {ivf_time * 1000:.2f} ms/query vs exact {exact_time * 1000:.2f}"
    )


if __name__ == "__main__":
    main()
