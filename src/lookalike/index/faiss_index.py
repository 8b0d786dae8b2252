"""The embedded vector index: FAISS, one file in the library folder.

Two layouts, picked by size:
- flat (exact search, `IndexIDMap2(IndexFlatIP)`) while the library is small. At 10k vectors of
  1280 dims a query costs a few milliseconds and recall is 1 by definition.
- IVF with 4-bit scalar quantisation (`IVF{nlist},SQ4`, inner product) once a library passes
  `ANN_THRESHOLD` vectors: about 660 bytes a vector instead of 5 KB. Its scores are approximate,
  so searches take RERANK_DEPTH candidates and re-score them with the catalog's vectors.
  `nprobe` is not guessed: `build` measures recall@10 (after that re-scoring) against exact
  search on a sample of the library's own vectors and takes the smallest nprobe that reaches
  `TARGET_RECALL`.

Both support add and remove in place, so adding images never rebuilds the index; the library
rebuilds it (from the catalog's vectors) only when it crosses the threshold or has grown far past
what the IVF was trained on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import faiss
import numpy as np

from .base import VectorIndex

ANN_THRESHOLD = 50_000  # below this, exact search is fast enough and simpler
TARGET_RECALL = 0.97  # the issue asks >= 0.95 against exact; keep a margin
RETRAIN_GROWTH = 4.0  # retrain an IVF once it holds this many times what it was trained on
RERANK_DEPTH = 100  # candidates an approximate index returns for exact re-scoring


class FaissIndex(VectorIndex):
    def __init__(self, index: faiss.Index):
        self._index = index

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int) -> FaissIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        ann_threshold: int = ANN_THRESHOLD,
        seed: int = 0,
    ) -> FaissIndex:
        """The right index for this many vectors, filled with them."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if n < ann_threshold:
            index = cls.empty(dim)
            index.add(ids, vectors)
            return index
        rng = np.random.default_rng(seed)
        nlist = _nlist_for(n)
        sample = vectors[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
        # IVF with 4-bit scalar quantisation: 0.5 byte per dimension (~660 bytes a vector at
        # 1280 dims, against 5,120 for float32). Its scores are approximate: the searcher
        # re-scores the best RERANK_DEPTH candidates with the catalog's vectors.
        ivf = faiss.index_factory(dim, f"IVF{nlist},SQ4", faiss.METRIC_INNER_PRODUCT)
        ivf.train(sample)
        # A hash-table direct map keeps remove_ids and reconstruct working on an IVF.
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.add_with_ids(vectors, ids)
        index = cls(ivf)
        index._tune_nprobe(ids, vectors, rng)
        return index

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        return cls(faiss.read_index(str(path)))

    def _tune_nprobe(
        self, ids: np.ndarray, vectors: np.ndarray, rng: np.random.Generator, queries: int = 256
    ) -> None:
        """Smallest power-of-two nprobe whose recall@10 against exact search on a sample of the
        library's own vectors, after re-scoring RERANK_DEPTH candidates exactly as the searcher
        does, reaches TARGET_RECALL; the result is kept in `measured_recall`."""
        ivf = faiss.extract_index_ivf(self._index)
        rows = rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)
        sample = vectors[rows]
        truth_rows = exact_top(vectors, sample, 11)
        truth = ids[truth_rows]  # the flat index answers with row numbers, the IVF with ids
        # Each query is a library vector: leave the query itself out of both answers, or its
        # trivially found self-match would inflate recall.
        truth = [[i for i in t if i != ids[r]][:10] for t, r in zip(truth, rows)]
        position = {int(i): n for n, i in enumerate(ids)}
        nprobe = 1
        while True:
            ivf.nprobe = nprobe
            _, found = self._index.search(sample, RERANK_DEPTH)
            got = []
            for candidates, query, r in zip(found, sample, rows):
                candidates = [c for c in candidates if c >= 0 and c != ids[r]]
                exact_scores = vectors[[position[int(c)] for c in candidates]] @ query
                got.append([candidates[i] for i in np.argsort(-exact_scores)[:10]])
            recall = float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)]))
            if recall >= TARGET_RECALL or nprobe >= ivf.nlist:
                self.measured_recall = recall
                return
            nprobe = min(ivf.nlist, nprobe * 2)

    # -- VectorIndex --------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            return "flat"
        return f"ivf{ivf.nlist},sq4,nprobe={ivf.nprobe}"

    @property
    def dim(self) -> int:
        return self._index.d

    @property
    def is_flat(self) -> bool:
        return faiss.try_extract_index_ivf(self._index) is None

    @property
    def approximate(self) -> bool:
        """Scores are approximate (quantised): callers re-score the candidates exactly."""
        return not self.is_flat

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, attributes: list[dict] | None = None
    ) -> None:
        """Add vectors under new ids (callers remove an id before adding it again); FAISS
        keeps no attributes: filters come from the catalog as an id selector."""
        if len(ids) == 0:
            return
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.ascontiguousarray(ids, dtype=np.int64),
        )

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.is_flat:
            selector = faiss.IDSelectorBatch(ids)  # hashed membership: one pass over the index
        else:
            selector = faiss.IDSelectorArray(ids)  # what the IVF's hash-table direct map takes
        return int(self._index.remove_ids(selector))

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, filters=None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self) == 0:
            n = len(queries)
            return np.zeros((n, k), np.float32), np.full((n, k), -1, np.int64)
        if allowed is None:
            return self._index.search(queries, k)
        # Only ids in `allowed` are scored: filters combine with the vector search itself.
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            params = faiss.SearchParameters(sel=selector)
        else:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
        return self._index.search(queries, k, params=params)

    def ids(self) -> np.ndarray:
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = ivf.invlists
        parts = []
        for list_no in range(ivf.nlist):
            size = lists.list_size(list_no)
            if size:
                ptr = lists.get_ids(list_no)
                parts.append(faiss.rev_swig_ptr(ptr, size).copy())
                lists.release_ids(list_no, ptr)
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def needs_rebuild(self, ann_threshold: int = ANN_THRESHOLD) -> bool:
        """True when the layout no longer fits the size: a flat index past the threshold, or an
        IVF holding RETRAIN_GROWTH times more vectors than its lists were sized for."""
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            return len(self) >= ann_threshold
        return _nlist_for(len(self)) >= math.sqrt(RETRAIN_GROWTH) * ivf.nlist

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            faiss.write_index(self._index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)  # a half-written file only takes space (a full disk)
            raise
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000):
    """Row numbers of each query's k best vectors, by exact inner product, chunk by chunk (no
    copy of `vectors`: at a million 1280-d vectors that would be another 5 GB)."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_rows = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ vectors[start : start + chunk].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.hstack([best_scores, np.take_along_axis(scores, top, axis=1)])
        merged_rows = np.hstack([best_rows, top + start])
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_rows = np.take_along_axis(merged_rows, order, axis=1)
    return best_rows


def _nlist_for(n: int) -> int:
    # FAISS's guideline is 4*sqrt(n) to 16*sqrt(n) lists; the low end keeps training cheap.
    # k-means wants at least 39 training points per list.
    return int(max(1, min(65536, 4 * math.sqrt(n), n // 39)))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
