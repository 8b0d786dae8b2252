"""Vector stores at 100k and 1M vectors: the embedded FAISS index and Milvus Lite. By hand:

    python bench/scale.py [--library DIR] [--sizes 100000,1000000] [--milvus-sizes 100000]

Vectors:
- real: the embeddings of ../shared/bench-data (a library built with `lookalike index`, given
  by --library, or built here), extended with embeddings of edited copies of those images
  (crops, rescales, JPEG, colour, flips, rotations, text, borders: the eval's transforms) up to
  the size asked for; cached in bench/out/real-vectors.npy;
- synthetic: as many as asked for, with the real vectors' dimension and distribution: each one
  a real vector plus noise, at the spread measured between real images and their copies.

For each store and size: build time, memory per vector (the index loaded alone in a fresh
process: RSS growth / vectors), recall@10 against exact search, single-query latency p50/p99
(index search, plus for the quantised index the exact re-scoring of 100 candidates read from a
SQLite table like the catalog's), queries/s, then adding 10k vectors and deleting 10k.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from lookalike.index import RERANK_DEPTH, FaissIndex

OUT = Path(__file__).parent / "out"
QUERIES = 500


# -- vectors ----------------------------------------------------------------------------------


def _copy_pixels(args):
    path, seed = args
    from lookalike.embed.effnet_lite0 import SquarePreprocessor
    from lookalike.evaluation.edits import TRANSFORMS, make_copy
    from lookalike.pictures import decode_image

    rng = random.Random(seed)
    image = decode_image(Path(path).read_bytes()).image
    data, _ = make_copy(image, rng.choice(TRANSFORMS), rng)
    return SquarePreprocessor()(decode_image(data, min_size=192).image)


def real_vectors(library: Path, n: int) -> np.ndarray:
    cache = OUT / "real-vectors.npy"
    if cache.exists() and len(np.load(cache, mmap_mode="r")) >= n:
        return np.load(cache)[:n]
    from lookalike.catalog import Catalog
    from lookalike.embed import create_embedder

    catalog = Catalog(library / "catalog.sqlite3")
    base = np.concatenate([v for _, v in catalog.iter_vectors()])
    paths = [p.source for r in catalog.images(catalog.vector_ids()).values() for p in r.places[:1]]
    embedder = create_embedder("effnet-lite0")
    need = n - len(base)
    print(f"real vectors: {len(base)} indexed + {need} copies to embed", flush=True)
    rng = random.Random(0)
    jobs = [(rng.choice(paths), i) for i in range(max(0, need))]
    parts = [base]
    started = time.time()
    with ProcessPoolExecutor(2) as pool:
        batch = []
        for pixels in pool.map(_copy_pixels, jobs, chunksize=64):
            batch.append(pixels)
            if len(batch) == 256:
                parts.append(embedder.embed(np.stack(batch)))
                batch = []
                done = sum(len(p) for p in parts) - len(base)
                if done % 10240 < 256:
                    print(
                        f"  {done} copies embedded ({done / (time.time() - started):.0f}/s)",
                        flush=True,
                    )
        if batch:
            parts.append(embedder.embed(np.stack(batch)))
    vectors = np.concatenate(parts).astype(np.float16).astype(np.float32)
    OUT.mkdir(exist_ok=True)
    np.save(cache, vectors)
    return vectors[:n]


def synthetic_vectors(real: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """Real vectors plus Gaussian noise, scaled so that the cosine to the anchor spreads like
    the real copies' (median ~0.88, 5th percentile ~0.65)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        anchors = real[rng.integers(len(real), size=m)]
        noise = rng.standard_normal((m, real.shape[1])).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        eps = rng.uniform(0.15, 0.9, size=(m, 1)).astype(np.float32)
        x = np.maximum(anchors + eps * noise, 0)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out.astype(np.float16).astype(np.float32)


def exact_top10(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    from lookalike.index.faiss_index import exact_top

    return exact_top(base, queries, 10)


# -- the embedded index -----------------------------------------------------------------------


def catalog_like_store(path: Path, vectors: np.ndarray) -> sqlite3.Connection:
    """A SQLite table like the catalog's `vectors` (float16 blobs by id) for re-scoring."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE vectors (image_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
    half = vectors.astype(np.float16)
    for start in range(0, len(vectors), 50_000):
        conn.executemany(
            "INSERT INTO vectors VALUES (?, ?)",
            ((i, half[i].tobytes()) for i in range(start, min(start + 50_000, len(vectors)))),
        )
    conn.commit()
    return conn


def rescore(conn, query, ids):
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT image_id, vector FROM vectors WHERE image_id IN ({marks})", [int(i) for i in ids]
    ).fetchall()
    found = np.array([r[0] for r in rows])
    vectors = (
        np.frombuffer(b"".join(r[1] for r in rows), np.float16)
        .reshape(len(rows), -1)
        .astype(np.float32)
    )
    return found[np.argsort(-(vectors @ query))[:10]]


def index_memory(path: Path) -> int:
    """RSS growth of a fresh process that loads the index file."""
    code = (
        "import faiss, re\n"
        "def rss():\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "before = rss()\n"
        f"index = faiss.read_index({str(path)!r})\n"
        "print(rss() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) * 1024  # kB -> bytes


def bench_faiss(name: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp: Path):
    n = len(base)
    ids = np.arange(n, dtype=np.int64)
    started = time.perf_counter()
    index = FaissIndex.build(ids, base)
    build = time.perf_counter() - started
    path = tmp / f"{name}-{n}.faiss"
    index.save(path)
    memory = index_memory(path)
    conn = catalog_like_store(tmp / f"{name}-{n}.sqlite3", base) if index.approximate else None
    latencies, recalls = [], []
    for query, true in zip(queries, truth):
        t0 = time.perf_counter()
        if conn is not None:
            _, found = index.search(query[None, :], RERANK_DEPTH)
            top = rescore(conn, query, found[0][found[0] >= 0])
        else:
            top = index.search(query[None, :], 10)[1][0]
        latencies.append(time.perf_counter() - t0)
        recalls.append(len(set(top.tolist()) & set(true.tolist())) / 10)
    ms = np.array(latencies) * 1000
    extra = synthetic_vectors(base[:1000], 10_000, seed=5)
    t0 = time.perf_counter()
    index.add(np.arange(n, n + 10_000, dtype=np.int64), extra)
    add = time.perf_counter() - t0
    t0 = time.perf_counter()
    removed = index.remove(np.arange(0, n, n // 10_000, dtype=np.int64)[:10_000])
    delete = time.perf_counter() - t0
    print(
        f"faiss    {name:9s} {n:>9,} {index.kind:28s} build {build:6.1f} s  "
        f"{memory / n:6.0f} B/vector ({path.stat().st_size / n:.0f} on disk)  "
        f"recall@10 {np.mean(recalls):.3f}  p50 {np.median(ms):5.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  "
        f"{1000 / ms.mean():5.0f} q/s  +10k in {add:.1f} s  -{removed} in {delete:.1f} s",
        flush=True,
    )
    if conn is not None:
        conn.close()


# -- Milvus Lite --------------------------------------------------------------------------------


def bench_milvus(name: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp: Path):
    from lookalike.index.milvus_index import MilvusIndex

    n = len(base)
    db = tmp / f"{name}-{n}.db"
    started = time.perf_counter()
    index = MilvusIndex(str(db), "bench", base.shape[1], index_type="IVF_FLAT",
                        params={"nlist": int(4 * n**0.5)})  # fmt: skip
    index.add(np.arange(n, dtype=np.int64), base)
    index.save()
    index.client.load_collection("bench")
    build = time.perf_counter() - started
    latencies, recalls = [], []
    for query, true in zip(queries, truth):
        t0 = time.perf_counter()
        _, found = index.search(query[None, :], 10)
        latencies.append(time.perf_counter() - t0)
        recalls.append(len(set(found[0].tolist()) & set(true.tolist())) / 10)
    ms = np.array(latencies) * 1000
    size = (
        sum(p.stat().st_size for p in Path(db).rglob("*") if p.is_file())
        if db.is_dir()
        else db.stat().st_size
    )
    print(
        f"milvus   {name:9s} {n:>9,} {'IVF_FLAT nprobe 32':28s} build {build:6.1f} s  "
        f"{size / n:6.0f} B/vector on disk  recall@10 {np.mean(recalls):.3f}  "
        f"p50 {np.median(ms):5.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  {1000 / ms.mean():5.0f} q/s",
        flush=True,
    )
    index.close()


def bench_milvus_streamed(real: np.ndarray, n: int, tmp: Path, chunk: int = 100_000):
    """Milvus Lite at sizes whose vectors should not sit in this process beside it: synthetic
    vectors are made, inserted and scored against the queries chunk by chunk."""
    from lookalike.index.milvus_index import MilvusIndex

    queries = synthetic_vectors(real, QUERIES, seed=99)
    best_scores = np.full((QUERIES, 10), -np.inf, np.float32)
    best_ids = np.zeros((QUERIES, 10), np.int64)
    db = tmp / f"streamed-{n}.db"
    started = time.perf_counter()
    index = MilvusIndex(str(db), "bench", real.shape[1], index_type="IVF_FLAT",
                        params={"nlist": int(4 * n**0.5)})  # fmt: skip
    for start in range(0, n, chunk):
        vectors = synthetic_vectors(real, min(chunk, n - start), seed=1000 + start // chunk)
        ids = np.arange(start, start + len(vectors), dtype=np.int64)
        index.add(ids, vectors)
        scores = queries @ vectors.T
        top = np.argsort(-scores, axis=1)[:, :10]
        merged_scores = np.hstack([best_scores, np.take_along_axis(scores, top, axis=1)])
        merged_ids = np.hstack([best_ids, ids[top]])
        order = np.argsort(-merged_scores, axis=1)[:, :10]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
        print(
            f"  milvus: {start + len(vectors):,} inserted ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    index.save()
    index.client.load_collection("bench")
    build = time.perf_counter() - started
    latencies, recalls = [], []
    for query, true in zip(queries, best_ids):
        t0 = time.perf_counter()
        _, found = index.search(query[None, :], 10)
        latencies.append(time.perf_counter() - t0)
        recalls.append(len(set(found[0].tolist()) & set(true.tolist())) / 10)
    ms = np.array(latencies) * 1000
    size = (
        sum(p.stat().st_size for p in Path(db).rglob("*") if p.is_file())
        if db.is_dir()
        else db.stat().st_size
    )
    print(
        f"milvus   synthetic {n:>9,} {'IVF_FLAT nprobe 32':28s} build {build:6.1f} s  "
        f"{size / n:6.0f} B/vector on disk  recall@10 {np.mean(recalls):.3f}  "
        f"p50 {np.median(ms):5.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  {1000 / ms.mean():5.0f} q/s",
        flush=True,
    )
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True,
                        help="a library of ../shared/bench-data (lookalike index ...)")  # fmt: skip
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--real-max", type=int, default=100_000)
    parser.add_argument("--milvus-sizes", default="100000")
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--milvus-streamed", type=int, default=0,
                        help="Only Milvus Lite, at this size, with vectors made chunk by chunk")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cpus {os.cpu_count()}, faiss {faiss.__version__}", flush=True)
    real = real_vectors(args.library, min(args.real_max, max(sizes)) + QUERIES)
    if args.milvus_streamed:
        with tempfile.TemporaryDirectory(prefix="lookalike-scale-") as tmp:
            bench_milvus_streamed(real, args.milvus_streamed, Path(tmp))
        return
    with tempfile.TemporaryDirectory(prefix="lookalike-scale-") as tmp:
        tmp = Path(tmp)
        for n in sizes:
            sets = [("synthetic", synthetic_vectors(real, n + QUERIES))]
            if n + QUERIES <= len(real):
                sets.insert(0, ("real", real[: n + QUERIES]))
            for name, vectors in sets:
                # synthetic vectors are in random order already; the real ones are shuffled
                # once (a copy is affordable at their size); slices below are views
                if name == "real":
                    vectors = vectors[np.random.default_rng(2).permutation(len(vectors))]
                queries, base = vectors[:QUERIES], vectors[QUERIES:]
                truth = exact_top10(base, queries)
                if not args.skip_faiss:
                    bench_faiss(name, base, queries, truth, tmp)
                if str(n) in args.milvus_sizes.split(","):
                    bench_milvus(name, base, queries, truth, tmp)
                del base, vectors


if __name__ == "__main__":
    main()
