"""Tiny pictures as copy candidates (src/lookalike/index/tiny.py): what they add, at what cost.

Makes the copies of `lookalike eval --copies` (same seed, sample and held-out split) and
prints two things:

1. Candidate recall: how often the original is among the vector search's first 30 hits (the
   query and its three turns, as `search --verify` searched small pictures before tiny
   pictures), among the first K of a tiny-picture search (sides 8, 12, 16), and in the union.
2. `search --verify` itself, for several TINY_DEPTH values, with and without the turned
   searches for small queries: recall@1 (the original or a picture of its group) and the
   time per query (cold: the candidates' pixel cache cleared for each variant).

    python bench/tiny_pictures.py ../shared/bench-data/tango_icons ../shared/bench-data/rltiles
    python bench/tiny_pictures.py --scale 1000000   # load and search times at that size
    python bench/tiny_pictures.py --cost ../shared/bench-data/opencv_pairs   # at index time
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import Catalog, NewImage
from lookalike.evaluation.copies import each_copy, split_for_copies
from lookalike.evaluation.metrics import read_groundtruth
from lookalike.evaluation.retrieval import ListedFiles
from lookalike.index import tiny
from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.pictures import decode_image, tiny_picture
from lookalike.search import candidates, verify
from lookalike.search import searcher as searcher_module
from lookalike.search.searcher import TURN_PENALTY, Searcher

SIDES = (8, 12, 16)
DEPTHS = (5, 10, 20, 30)  # tiny-picture candidates, for the union
VECTOR_DEPTH = 30  # verify.PIXEL_DEPTH


def tiny_at(image: Image.Image, side: int) -> np.ndarray:
    """pictures/tiny.py's tiny picture at another side: its 8 symmetries, as unit float rows."""
    return tiny.symmetries(tiny_picture(image, side), side)


def candidate_recall(library, searcher, records, copies, right_ids) -> None:
    ids = sorted(records)
    row_of = {image_id: n for n, image_id in enumerate(ids)}
    pictures = [decode_image(Path(records[i].first_place.source).read_bytes()).image for i in ids]
    library_rows = {side: np.stack([tiny_at(p, side)[0] for p in pictures]) for side in SIDES}
    found_by_vector, ranks = [], {side: [] for side in SIDES}
    for (_, data), right in zip(copies, right_ids):
        query = searcher.bytes_vector(data)
        vectors = np.vstack([query.vector[None], searcher.turned_vectors(query.image)])
        scores, hits = library.index.search(vectors, VECTOR_DEPTH)
        scores[1:] -= TURN_PENALTY
        best: dict[int, float] = {}
        for i, s in zip(hits.ravel(), scores.ravel()):
            best[int(i)] = max(best.get(int(i), -9.0), float(s))
        top = sorted(best, key=lambda i: -best[i])[:VECTOR_DEPTH]
        found_by_vector.append(bool(right & set(top)))
        for side in SIDES:
            sims = library_rows[side] @ tiny_at(query.image, side).T
            sims[:, 1:] -= tiny.SYMMETRY_PENALTY
            sims = sims.max(axis=1)
            ranks[side].append(min(int((sims > sims[row_of[i]]).sum()) for i in right))
    print(f"original among the vector search's {VECTOR_DEPTH} (with turns): "
          f"{np.mean(found_by_vector):.3f}")  # fmt: skip
    for side in SIDES:
        alone = " ".join(f"{np.mean(np.array(ranks[side]) < k):.3f}" for k in DEPTHS)
        union = " ".join(
            f"{np.mean([v or r < k for v, r in zip(found_by_vector, ranks[side])]):.3f}"
            for k in DEPTHS
        )
        print(f"  tiny {side:2d} px, first {DEPTHS}: alone {alone}; with the vector's: {union}")


def verified_search(searcher, copies, right_ids, variants) -> None:
    for depth, turns in variants:
        candidates.TINY_DEPTH = depth
        searcher_module.TURNED_MIN_SIDE = 0 if turns else 64  # 0: small queries searched turned too
        verify.candidate_pixels.clear()
        seconds, found = [], []
        for (_, data), right in zip(copies, right_ids):
            start = time.perf_counter()
            query = searcher.bytes_vector(data)
            hits = searcher.search_vector(query, 10, collapse=False, verify=True)
            seconds.append(time.perf_counter() - start)
            found.append(bool(hits) and hits[0].id in right)
        ms = np.array(seconds) * 1000
        print(f"  TINY_DEPTH {depth:2d}, small queries searched turned: {'yes' if turns else 'no '}"
              f"  R@1 {np.mean(found):.3f}, p50 {np.percentile(ms, 50):.1f} ms, "
              f"p99 {np.percentile(ms, 99):.1f} ms")  # fmt: skip


def scale(n: int) -> None:
    """Time TinyPictures on a catalog of `n` random tiny pictures of 32 px tiles: the first
    load, an incremental one, and searches (memory: n x 144 bytes, plus float copies of one
    chunk)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog.sqlite3")
        rows = rng.integers(-127, 128, size=(n, 144), dtype=np.int8)
        now = time.time()
        with catalog.transaction():
            catalog.conn.executemany(
                "INSERT INTO images (sha256, byte_size, status, width, height, tiny, created_at,"
                " updated_at) VALUES (?, 1, 'indexed', 32, 32, ?, ?, ?)",
                ((f"{i:064x}", rows[i].tobytes(), now, now) for i in range(n)),
            )
        pictures = tiny.TinyPictures()
        start = time.perf_counter()
        pictures.refresh(catalog)
        print(f"{n:,} tiny pictures: first load {time.perf_counter() - start:.2f} s")
        catalog.put_image(NewImage("new", 1, status="indexed", tiny=rows[0].tobytes()))
        start = time.perf_counter()
        pictures.refresh(catalog)
        print(f"  one image added since: refresh {(time.perf_counter() - start) * 1000:.1f} ms")
        seconds = []
        for i in range(20):
            start = time.perf_counter()
            pictures.search(catalog, rows[i].tobytes(), candidates.TINY_DEPTH)
            seconds.append(time.perf_counter() - start)
        ms = np.array(seconds) * 1000
        print(f"  search (8 symmetries, best {candidates.TINY_DEPTH}): p50 {np.percentile(ms, 50):.1f}"
              f" ms, max {ms.max():.1f} ms")  # fmt: skip
        # The crop search's worst case: every image a 32 px tile that a 20 x 18 crop fits in.
        seconds = []
        for _ in range(20):
            crop = Image.fromarray(rng.integers(0, 256, size=(18, 20, 3), dtype=np.uint8))
            start = time.perf_counter()
            pictures.search_within(
                catalog, crop, candidates.CROP_DEPTH, offset_k=candidates.OFFSET_DEPTH
            )
            seconds.append(time.perf_counter() - start)
        ms = np.array(seconds) * 1000
        print(f"  search_within (a 20 x 18 crop of 32 px tiles; CROP_BUDGET {tiny.CROP_BUDGET:,}): p50 "
              f"{np.percentile(ms, 50):.1f} ms, max {ms.max():.1f} ms")  # fmt: skip
        catalog.close()


def cost(dataset: Path) -> None:
    """What making tiny pictures adds to indexing: per file, the decode worker's decode and
    model input (effnet-lite0) against the tiny picture, one core."""
    from lookalike.embed.effnet_lite0 import EffNetLite0

    prep = EffNetLite0.__new__(EffNetLite0).preprocessor()  # no network needed
    seconds = {"decode": [], "model input": [], "tiny picture": []}
    for path in sorted(p for p in dataset.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".gif"}):  # fmt: skip
        start = time.perf_counter()
        image = decode_image(path.read_bytes(), min_size=prep.size, keep_alpha=True).image
        decoded = time.perf_counter()
        prep(image)
        prepared = time.perf_counter()
        tiny_picture(image)
        done = time.perf_counter()
        for key, value in zip(seconds, (decoded - start, prepared - decoded, done - prepared)):
            seconds[key].append(value * 1000)
    print(f"{dataset.name}: {len(seconds['decode'])} files, mean ms per file: "
          + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in seconds.items()))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path)
    parser.add_argument("--scale", type=int, help="time tiny pictures at this many images")
    parser.add_argument("--cost", type=Path, action="append", default=[],
                        help="time making tiny pictures for this set's files (repeatable)")  # fmt: skip
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timed", type=int, default=400, help="copies searched per variant")
    args = parser.parse_args()
    if args.scale:
        scale(args.scale)
    for dataset in args.cost:
        cost(dataset)
    for dataset in args.datasets:
        dataset = dataset.resolve()
        rows = read_groundtruth(dataset)
        group_of_path = {str(dataset / r.path): r.group for r in rows}
        rng, _, indexed, originals = split_for_copies(rows, sample=args.sample, negatives=50, seed=args.seed)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp, Library.open(Path(tmp), write=True) as library:
            Indexer(library, progress=False).run([ListedFiles(dataset, indexed)])
            searcher = Searcher(library)
            records = library.catalog.images(library.catalog.vector_ids())
            by_source = {p.source: i for i, r in records.items() for p in r.places}
            group_ids: dict[str, set[int]] = {}
            for i, r in records.items():
                group = group_of_path.get(r.first_place.source)
                if group:
                    group_ids.setdefault(group, set()).add(i)
            copies, right_ids = [], []
            for row, original, _, data, _ in each_copy(dataset, originals, by_source, rng):
                copies.append((original, data))
                right_ids.append({original} | group_ids.get(row.group, set()) if row.group else {original})  # fmt: skip
            print(f"\n{dataset.name}: {len(copies)} copies")
            candidate_recall(library, searcher, records, copies, right_ids)
            print(f"search --verify, the first {args.timed} copies:")
            n = args.timed
            variants = [(0, True), (5, True), (10, True), (10, False), (20, False)]
            verified_search(searcher, copies[:n], right_ids[:n], variants)


if __name__ == "__main__":
    main()
