"""The FAISS index: exact while small, IVF with measured recall once large, atomic saves."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index import RERANK_DEPTH, FaissIndex


def unit_vectors(n: int, dim: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Clustered unit vectors: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_flat_index_add_search_remove():
    vectors = unit_vectors(200, 32)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index = FaissIndex.build(ids, vectors)
    assert index.kind == "flat" and len(index) == 200
    scores, found = index.search(vectors[:5], 3)
    assert list(found[:, 0]) == list(ids[:5])  # each vector finds itself first
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert index.remove(ids[:5]) == 5
    assert index.remove(np.array([99999])) == 0  # unknown ids are ignored
    _, found = index.search(vectors[:5], 3)
    assert not set(found.ravel()) & set(ids[:5])
    assert sorted(index.ids()) == sorted(ids[5:])


def test_empty_index_searches_to_nothing():
    index = FaissIndex.empty(16)
    scores, found = index.search(unit_vectors(2, 16), 4)
    assert found.shape == (2, 4) and (found == -1).all()


def test_ivf_reaches_the_recall_target_against_exact_search():
    n, dim = 6000, 48
    vectors = unit_vectors(n, dim, seed=1)
    ids = np.arange(n, dtype=np.int64) * 7  # ids need not be positions
    index = FaissIndex.build(ids, vectors, ann_threshold=1000)
    assert index.kind.startswith("ivf")
    # Queries like real ones: new pictures near library pictures (a library image, perturbed).
    rng = np.random.default_rng(2)
    queries = vectors[rng.choice(n, 300, replace=False)] + 0.05 * rng.normal(size=(300, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    assert index.approximate
    exact = FaissIndex.build(ids, vectors, ann_threshold=10**9)
    _, truth = exact.search(queries, 10)
    # as the searcher does: RERANK_DEPTH candidates, re-scored with the exact vectors
    _, candidates = index.search(queries, RERANK_DEPTH)
    got = []
    for row, query in zip(candidates, queries):
        row = row[row >= 0]
        got.append(row[np.argsort(-(vectors[row // 7] @ query))[:10]])
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.95, recall
    assert index.measured_recall >= 0.97  # what build() tuned nprobe for


def test_ivf_supports_add_and_remove_without_rebuilding():
    vectors = unit_vectors(3000, 32, seed=3)
    index = FaissIndex.build(np.arange(3000), vectors, ann_threshold=1000)
    extra = unit_vectors(10, 32, seed=4)
    index.add(np.arange(5000, 5010), extra)
    assert len(index) == 3010
    _, found = index.search(extra, 1)
    assert list(found[:, 0]) == list(range(5000, 5010))
    assert index.remove(np.arange(5000, 5005)) == 5
    assert len(index) == 3005
    assert set(index.ids()) == set(range(3000)) | set(range(5005, 5010))


def test_needs_rebuild_when_a_flat_index_outgrows_exact_search():
    index = FaissIndex.build(np.arange(50), unit_vectors(50, 8), ann_threshold=100)
    assert not index.needs_rebuild(ann_threshold=100)
    index.add(np.arange(50, 120), unit_vectors(70, 8, seed=5))
    assert index.needs_rebuild(ann_threshold=100)


@pytest.mark.parametrize("ann_threshold", [10**9, 500])
def test_save_and_load_round_trip(tmp_path, ann_threshold):
    vectors = unit_vectors(1500, 16)
    index = FaissIndex.build(np.arange(1500), vectors, ann_threshold=ann_threshold)
    path = tmp_path / "index.faiss"
    index.save(path)
    assert not (tmp_path / "index.faiss.tmp").exists()  # written aside, then renamed
    loaded = FaissIndex.load(path)
    assert loaded.kind == index.kind and len(loaded) == 1500
    assert np.array_equal(loaded.search(vectors[:20], 5)[1], index.search(vectors[:20], 5)[1])


def test_an_approximate_index_is_rescored_by_the_searcher(run_cli, tmp_path, library_path):
    """Through the real searcher: a quantised index gives the same top hits as exact search."""
    from lookalike.library import Library
    from lookalike.search import Searcher

    from .conftest import save_picture

    folder = tmp_path / "pics"
    for seed in range(60):
        save_picture(folder / f"p{seed:02d}.png", 4000 + seed, size=(48, 48))
    run_cli("index", folder)
    with Library.open(library_path, write=True) as library:
        searcher = Searcher(library)
        exact = [[h.id for h in searcher.search_vector(searcher.id_vector(i), 5, collapse=False)]
                 for i in range(1, 61)]  # fmt: skip
        library.rebuild_index(ann_threshold=10)
        assert library.index.approximate and library.index.kind.startswith("ivf")
        approx = [[h.id for h in searcher.search_vector(searcher.id_vector(i), 5, collapse=False)]
                  for i in range(1, 61)]  # fmt: skip
    assert np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact)]) >= 0.95
