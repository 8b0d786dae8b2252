"""Learned whitening (ranking/whitening.py), learning it from a library (tuning/tuner.py, `lookalike
tune`, `lookalike index`), and search ranking by it (search/searcher.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lookalike.cli import main as cli_main
from lookalike.library import WHITENING_FILE, Library
from lookalike.ranking.diffusion import diffusion_order, diffusion_weights, rank_whitened
from lookalike.ranking.whitening import (
    NEIGHBOUR_WEIGHT,
    Whitening,
    WhiteningError,
    learn_whitening,
    neighbour_pairs,
)
from lookalike.search import QueryVector, Searcher
from lookalike.search.hits import COPY_THRESHOLD
from lookalike.tuning import tuner

from .conftest import index_icons


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _nuisance_data(seed: int = 0, n: int = 300, dim: int = 64):
    """Images whose vectors are mostly a large 'nuisance' (what an edit moves) in 8 of 64
    directions, and an edited view of each: the same content, another nuisance."""
    rng = np.random.default_rng(seed)
    content = rng.normal(0, 1, (n, dim))

    def nuisance():
        noise = np.zeros((n, dim))
        noise[:, :8] = rng.normal(0, 6, (n, 8))
        return noise

    return _unit(content + nuisance()), _unit(content + nuisance())


def _run(capsys, root, *args) -> tuple[int, str]:
    """`lookalike -L root ARGS` in-process: (exit code, stdout + stderr)."""
    code = cli_main(["-L", str(root), *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _recall_at_1(queries: np.ndarray, gallery: np.ndarray) -> float:
    return float(np.mean(np.argmax(queries @ gallery.T, axis=1) == np.arange(len(queries))))


def test_whitening_learned_from_pairs_finds_edited_views_that_cosine_misses():
    images, views = _nuisance_data()
    whitening = learn_whitening(images, [(images, views)], model_id="m", library_size=300)
    # unseen images of the same kind: the whitening generalises, it did not memorise pairs
    test_images, test_views = _nuisance_data(seed=1)
    before = _recall_at_1(test_views, test_images)
    after = _recall_at_1(whitening.apply(test_views), whitening.apply(test_images))
    assert before < 0.5
    assert after > 0.95
    mapped = whitening.apply(test_images)
    assert mapped.shape == (300, 64)  # DIMS (256) is more than 64: all dimensions are kept
    assert np.allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)


def _dense_whitening(vectors, diffs, shrink, dims):
    """The whitening as docs/quality.md states it, with both d x d eigenproblems solved whole."""
    mean = vectors.mean(axis=0)
    values, axes = np.linalg.eigh(diffs.T @ diffs / len(diffs))
    values = np.maximum(values, 0) + shrink * values.mean()
    inverse_root = (axes / np.sqrt(values)) @ axes.T
    mapped = (vectors - mean) @ inverse_root
    spread, rotation = np.linalg.eigh(mapped.T @ mapped / len(mapped))
    return mean, inverse_root @ rotation[:, np.argsort(spread)[::-1][:dims]]


@pytest.mark.parametrize("images,pairs,dim", [(120, 60, 200), (400, 300, 100), (90, 400, 150)])
def test_learned_whitening_equals_the_dense_solution(images, pairs, dim):
    """Fewer images or pairs than dimensions (a library's first learning with details: 500
    images, 4,016 numbers each) take the Gram-matrix route; the scores must be the same."""
    rng = np.random.default_rng(images)
    vectors = rng.normal(0, 1, (images, dim)) @ rng.normal(0, 1, (dim, dim))
    originals = vectors[: min(pairs, images)]
    edited = originals + rng.normal(0, 2, originals.shape)
    whitening = learn_whitening(vectors, [(originals, edited)], model_id="m", library_size=images, dims=32)  # fmt: skip
    mean, projection = _dense_whitening(vectors, originals - edited, 0.1, 32)
    dense = _unit((edited - mean) @ projection) @ _unit((vectors - mean) @ projection).T
    ours = whitening.apply(edited) @ whitening.apply(vectors).T
    assert whitening.projection.shape == (dim, 32)
    assert np.abs(ours - dense).max() < 1e-4


def _variant_groups(seed: int, groups: int = 150, per: int = 3, dim: int = 64):
    """Groups of `per` vectors that share their content but vary strongly in 8 directions
    that the edited views (small noise everywhere) never show: like an icon's sizes."""
    rng = np.random.default_rng(seed)
    content = rng.normal(0, 1, (groups, dim))
    content[:, :8] = 0
    variant = np.zeros((groups * per, dim))
    variant[:, :8] = rng.normal(0, 3, (groups * per, 8))
    vectors = _unit(np.repeat(content, per, axis=0) + variant)
    return vectors, _unit(vectors + rng.normal(0, 0.03, vectors.shape)), np.repeat(np.arange(groups), per)  # fmt: skip


def _group_recall_at_1(mapped: np.ndarray, labels: np.ndarray) -> float:
    sims = mapped @ mapped.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean(labels[sims.argmax(axis=1)] == labels))


def test_learning_again_from_the_librarys_look_alikes_finds_variants_the_edits_never_showed():
    vectors, views, _ = _variant_groups(0)
    first = learn_whitening(vectors, [(vectors, views)], model_id="m", library_size=450)
    pairs = neighbour_pairs(first, vectors)
    assert 50 < len(pairs[0]) == len(pairs[1]) < 450
    # scaled so that they count NEIGHBOUR_WEIGHT as much as an edited view's pair
    assert np.allclose(np.linalg.norm(pairs[0], axis=1), np.sqrt(NEIGHBOUR_WEIGHT), atol=1e-5)
    second = learn_whitening(vectors, [(vectors, views), pairs], model_id="m", library_size=450)
    unseen, _, labels = _variant_groups(1)  # another library of the same kind
    before = _group_recall_at_1(first.apply(unseen), labels)
    after = _group_recall_at_1(second.apply(unseen), labels)
    assert before < 0.7 and after > 0.95, (before, after)
    # most pairs are two of one group (at random: 2 in 449), though the first whitening found
    # the group's look-alike first for under 0.7 of the vectors
    scaled = vectors.astype(np.float32) * np.float32(np.sqrt(NEIGHBOUR_WEIGHT))
    rows = {v.tobytes(): n for n, v in enumerate(scaled)}
    _, _, own_labels = _variant_groups(0)
    same = [own_labels[rows[a.tobytes()]] == own_labels[rows[b.tobytes()]] for a, b in zip(*pairs)]
    assert np.mean(same) > 0.6
    assert len(neighbour_pairs(first, vectors[:2])[0]) == 0  # too few to have neighbours


def test_whitening_keeps_the_largest_dims_and_needs_pairs():
    images, views = _nuisance_data()
    small = learn_whitening(images, [(images, views)], model_id="m", library_size=300, dims=16)
    assert small.apply(images).shape == (300, 16)
    with pytest.raises(ValueError, match="at least two images"):
        learn_whitening(images, [], model_id="m", library_size=300)


def test_whitening_survives_a_save_and_refuses_a_damaged_file(tmp_path):
    images, views = _nuisance_data()
    whitening = learn_whitening(images, [(images, views)], model_id="m@1", library_size=7)
    path = tmp_path / "w.npz"
    whitening.save(path)
    loaded = Whitening.load(path)
    assert (loaded.model_id, loaded.images, loaded.library_size) == ("m@1", 300, 7)
    assert np.array_equal(loaded.apply(images), whitening.apply(images))
    path.write_bytes(b"not a numpy file")
    with pytest.raises(WhiteningError, match="cannot read"):
        Whitening.load(path)
    np.savez(path, mean=np.zeros(4, np.float32), projection=np.zeros((5, 2), np.float32),
             model_id=np.array("m"), images=np.array(1), library_size=np.array(1))  # fmt: skip
    with pytest.raises(WhiteningError, match="damaged"):
        Whitening.load(path)
    np.savez(path, mean=np.zeros(4, np.float32), projection=np.zeros((4, 2), np.float32),
             model_id=np.array("m"), images=np.array(1), library_size=np.array(1),
             detail_dim=np.array(4))  # fmt: skip
    with pytest.raises(WhiteningError, match="detail_dim"):
        Whitening.load(path)
    # a whitening saved before details existed: none
    np.savez(path, mean=whitening.mean, projection=whitening.projection, model_id=np.array("m"),
             images=np.array(1), library_size=np.array(1))  # fmt: skip
    assert Whitening.load(path).detail_dim == 0


def test_a_whitening_with_details_maps_vectors_and_details_together(tmp_path):
    """Details (the last columns) say what the vectors alone cannot: here the content is
    only in the details, so with them the views find their images, and without them (the
    library's mean details in their place) they do not."""
    rng = np.random.default_rng(0)
    n = 300
    content = _unit(rng.normal(0, 1, (n, 16)))
    vectors, view_vectors = _unit(rng.normal(0, 1, (n, 32))), _unit(rng.normal(0, 1, (n, 32)))
    details, view_details = content, _unit(content + rng.normal(0, 0.1, (n, 16)))
    whitening = learn_whitening(
        np.hstack([vectors, details]),
        [(np.hstack([vectors, details]), np.hstack([view_vectors, view_details]))],
        model_id="m@1",
        library_size=n,
        detail_dim=16,
    )
    assert whitening.detail_dim == 16 and whitening.mean.shape == (48,)
    found = _recall_at_1(whitening.apply(view_vectors, view_details), whitening.apply(vectors, details))  # fmt: skip
    blind = _recall_at_1(whitening.apply(view_vectors), whitening.apply(vectors))
    assert found > 0.95 and blind < 0.05
    whitening.save(tmp_path / "w.npz")
    loaded = Whitening.load(tmp_path / "w.npz")
    assert loaded.detail_dim == 16
    assert np.array_equal(loaded.apply(vectors, details), whitening.apply(vectors, details))


@pytest.fixture(scope="module")
def icon_library(tmp_path_factory):
    """48 icons indexed with the default model, tuned (with a whitening learned from them)."""
    tmp = tmp_path_factory.mktemp("whitened")
    root, folder = index_icons(tmp, 48, first_seed=500, sizes=(16, 24, 32), seed=3)
    with Library.open(root, write=True) as library:
        report = tuner.tune(library, sample=48, progress=False)
    return root, folder, report


def test_tune_learns_from_the_library_and_search_ranks_by_it(icon_library, tmp_path):
    root, folder, report = icon_library
    assert report.sampled == 48 and report.unreadable == 0
    assert (root / WHITENING_FILE).exists()
    with Library.open(root) as library:
        whitening = library.whitening
        assert whitening is not None
        assert whitening.model_id == library.catalog.get_meta("model_id")
        assert (whitening.images, whitening.library_size) == (48, 48)
        # learned on each vector and its details side by side (the default model has them)
        assert whitening.detail_dim == library.embedder.detail_dim > 0
        assert whitening.mean.shape == (library.embedder.dim + whitening.detail_dim,)
        searcher = Searcher(library)
        query = searcher.query_vector(str(folder / "icon05.png"))
        assert query.details is not None and query.details.shape == (whitening.detail_dim,)
        # a verified search ranks by cosine, never by details: its query is made without them,
        # with the same vector
        bare = searcher.query_vector(str(folder / "icon05.png"), details=False)
        assert bare.details is None and np.array_equal(bare.vector, query.vector)
        hits = searcher.search_vector(query, 10, collapse=False)
        # the same bytes: an exact hit, first, at similarity 1 under the whitening too
        assert hits[0].tier == "exact" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        ids = [h.id for h in hits]
        _, vectors = library.catalog.vectors(ids)
        having, details = library.catalog.details(ids, whitening.detail_dim)
        assert having.tolist() == ids  # every indexed image has its details
        order = {i: row for row, i in enumerate(library.catalog.vectors(ids)[0].tolist())}
        mapped_query = whitening.apply(query.vector[None, :], query.details[None, :])[0]
        expected = whitening.apply(vectors, details) @ mapped_query
        for hit in hits:
            assert hit.score == pytest.approx(expected[order[hit.id]], abs=1e-5)
        # the details count: without them, the scores would be others
        assert not np.allclose(whitening.apply(vectors) @ mapped_query, expected, atol=1e-3)
        # in the order of diffusion over all the candidates (here the whole library), after
        # the copies; which is not the order of their scores
        everything = searcher.search_vector(query, 48, collapse=False)
        assert len(everything) == 48
        all_ids, all_vectors = library.catalog.vectors([h.id for h in everything])
        all_details = library.catalog.details(all_ids, whitening.detail_dim)[1]
        diffused = all_ids[
            diffusion_order(mapped_query, whitening.apply(all_vectors, all_details))
        ].tolist()
        copies = {h.id for h in everything if h.cosine >= COPY_THRESHOLD}
        assert copies and [h.id for h in everything if h.id not in copies] == [
            i for i in diffused if i not in copies
        ]
        assert [h.score for h in everything] != sorted((h.score for h in everything), reverse=True)
        # ...which is not the plain cosine order
        cosine = library.catalog.vectors(ids)[1] @ query.vector
        assert not np.allclose(sorted(cosine, reverse=True), [h.score for h in hits], atol=1e-3)
        # an edited copy (one pixel changed) is in the copy tier by its cosine similarity,
        # and stays first whatever its score under the whitening
        from PIL import Image

        edited = Image.open(folder / "icon07.png").convert("RGB")
        edited.putpixel((0, 0), (255, 0, 255))
        edited.save(tmp_path / "edited.png")
        hits = searcher.search([str(tmp_path / "edited.png")], 5)[0].hits
        assert hits[0].record.first_place.source.endswith("icon07.png")
        assert hits[0].tier == "copy" and hits[0].cosine >= 0.98
        # ...even where its score under the whitening is the lowest of the candidates
        candidates = [(h.id, 0.5) for h in hits]
        ranked = dict(
            rank_whitened(library.catalog, whitening, query.vector, candidates, COPY_THRESHOLD)
        )
        weakest = min(ranked, key=ranked.get)
        candidates = [(i, 0.99 if i == weakest else s) for i, s in candidates]
        reranked = rank_whitened(
            library.catalog, whitening, query.vector, candidates, COPY_THRESHOLD
        )
        assert reranked[0] == (weakest, ranked[weakest])
        # the others as they were ranked (by diffusion) without it
        assert [i for i, _ in reranked[1:]] == [i for i in ranked if i != weakest]
        # several copies: among them, the order under the whitening, not cosine's
        second = max((i for i in ranked if i != weakest), key=ranked.get)
        candidates = [(i, 0.995 if i == weakest else 0.99 if i == second else s) for i, s in candidates]  # fmt: skip
        reranked = rank_whitened(
            library.catalog, whitening, query.vector, candidates, COPY_THRESHOLD
        )
        assert [i for i, _ in reranked[:2]] == [second, weakest]
        # text or mixed queries (picture=False) keep plain cosine similarity
        plain = searcher.search_vector(QueryVector(query.vector, picture=False), 5, collapse=False)
        _, plain_vectors = library.catalog.vectors([plain[0].id])
        assert plain[0].score == pytest.approx(float(plain_vectors[0] @ query.vector), abs=1e-4)


def test_another_models_or_a_damaged_whitening_is_not_used(icon_library, tmp_path, caplog):
    root, folder, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    with Library.open(copy) as library:
        good = library.whitening
        assert good is not None
    Whitening(good.mean, good.projection, "another-model@1", 48, 48).save(copy / WHITENING_FILE)
    with Library.open(copy) as library:
        assert library.whitening is None  # e.g. after `reindex --model`
    (copy / WHITENING_FILE).write_bytes(b"\x00" * 100)
    with Library.open(copy) as library, caplog.at_level(logging.WARNING):
        assert library.whitening is None
        assert "ranking without it" in caplog.text
        hits = Searcher(library).search([str(folder / "icon01.png")], 3)[0].hits
        assert hits[0].tier == "exact"  # search goes on, by plain cosine similarity
        _, vectors = library.catalog.vectors([hits[1].id])
        query = Searcher(library).query_vector(str(folder / "icon01.png"))
        assert hits[1].score == pytest.approx(float(vectors[0] @ query.vector), abs=1e-4)
        assert query.details is None  # nothing would rank by them


def test_an_open_library_follows_a_whitening_learned_by_another_process(icon_library, tmp_path):
    root, _, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    learned = Whitening.load(copy / WHITENING_FILE)
    (copy / WHITENING_FILE).unlink()
    with Library.open(copy) as reader:  # a server, say
        assert reader.whitening is None
        learned.save(copy / WHITENING_FILE)  # `lookalike tune` in another process
        assert reader.whitening is not None


def test_tune_without_readable_originals_keeps_what_the_library_had(icon_library, tmp_path, capsys):
    root, folder, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    before = (copy / WHITENING_FILE).read_bytes()
    moved = tmp_path / "moved"
    folder.rename(moved)
    try:
        with Library.open(copy, write=True) as library:
            report = tuner.tune(library, sample=48, progress=False)
            assert report.whitening is None and report.unreadable == 48
            assert library.whitening is not None
        assert (copy / WHITENING_FILE).read_bytes() == before
        code, output = _run(capsys, copy, "tune", "-q")
        assert code == 1
        assert "48 of the sampled originals are unreadable" in output
    finally:
        moved.rename(folder)


def test_index_learns_the_ranking_once_the_library_is_large_enough(tmp_path, monkeypatch, capsys):
    _, folder = index_icons(tmp_path, 24, first_seed=700, sizes=(16, 24), seed=4)
    root = tmp_path / "cli-library"
    monkeypatch.setattr(tuner, "MIN_IMAGES", 22)
    half = sorted(folder.iterdir())[:20]
    first = tmp_path / "first"
    first.mkdir()
    for path in half:
        (first / path.name).write_bytes(path.read_bytes())
    code, output = _run(capsys, root, "index", first)
    assert code == 0, output
    assert not (root / WHITENING_FILE).exists()  # 20 images: below MIN_IMAGES (22)
    code, output = _run(capsys, root, "stats")
    assert "ranking   cosine similarity (no whitening learned yet" in output
    code, output = _run(capsys, root, "index", folder)
    assert code == 0, output
    assert "learned the ranking from 24 images" in output
    assert Whitening.load(root / WHITENING_FILE).library_size == 24
    code, output = _run(capsys, root, "index", folder)
    assert code == 0 and "learned the ranking" not in output  # not grown: nothing to relearn
    code, output = _run(capsys, root, "tune", "--sample", "10")
    assert code == 0, output
    assert "learned the ranking from 10 images (0 unreadable)" in output
    assert Whitening.load(root / WHITENING_FILE).images == 10
    code, output = _run(capsys, root, "stats")
    assert "ranking   whitening learned from 10 images" in output


def test_images_without_details_are_ranked_by_their_vectors(icon_library, tmp_path):
    """An image without sound details (a damaged row that `check --repair` dropped, or one
    of the wrong length or not finite) is mapped with the library's mean details; the ranking is learned from the images that have
    them, and from the vectors alone once most images lack them."""
    root, folder, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    with Library.open(copy, write=True) as library:
        catalog = library.catalog
        catalog.conn.execute("UPDATE vectors SET detail = NULL WHERE image_id = 3")
        catalog.conn.execute("UPDATE vectors SET detail = x'00' WHERE image_id = 4")  # damaged
        nan = np.full(library.embedder.detail_dim, np.nan, np.float16).tobytes()
        catalog.conn.execute("UPDATE vectors SET detail = ? WHERE image_id = 5", (nan,))
        whitening = tuner.tune(library, sample=30, progress=False).whitening
        assert whitening.detail_dim == library.embedder.detail_dim
        searcher = Searcher(library)
        query = searcher.query_vector(str(folder / "icon05.png"))
        hits = searcher.search_vector(query, 48, collapse=False)
        score = {h.id: h.score for h in hits}
        assert {3, 4, 5} <= set(score)
        _, vectors = catalog.vectors([3, 4, 5])
        mapped_query = whitening.apply(query.vector[None], query.details[None])[0]
        assert [score[3], score[4], score[5]] == pytest.approx((whitening.apply(vectors) @ mapped_query).tolist(), abs=1e-5)  # fmt: skip
        catalog.conn.execute("UPDATE vectors SET detail = NULL WHERE image_id > 20")
        alone = tuner.tune(library, sample=30, progress=False).whitening
        assert alone.detail_dim == 0 and alone.mean.shape == (library.embedder.dim,)
        hits = searcher.search_vector(query, 5, collapse=False)
        _, vectors = catalog.vectors([h.id for h in hits])
        expected = alone.apply(vectors) @ alone.apply(query.vector[None])[0]
        assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_large_library_learns_from_a_sample_of_its_vectors(icon_library, tmp_path, monkeypatch):
    root, _, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    monkeypatch.setattr(tuner, "MAX_VECTORS", 20)  # 48 images: the mean and axes from 20
    with Library.open(copy, write=True) as library:
        report = tuner.tune(library, sample=30, progress=False)
        assert report.sampled == 30
        assert (report.whitening.images, report.whitening.library_size) == (30, 48)
        mapped = report.whitening.apply(library.catalog.vectors(range(1, 49))[1])
        # 20 vectors less their mean span 19 directions, and only those are kept
        assert mapped.shape == (48, 19) and np.isfinite(mapped).all()


def test_check_warns_of_an_unusable_ranking_and_repair_learns_it(
    icon_library, tmp_path, monkeypatch
):
    from lookalike.upkeep import check_library

    root, _, _ = icon_library
    import shutil

    copy = tmp_path / "library"
    shutil.copytree(root, copy)
    assert not [f for f in check_library(copy, files=False).findings if f.area == "ranking"]
    (copy / WHITENING_FILE).write_bytes(b"garbage")
    found = [f for f in check_library(copy, files=False).findings if f.area == "ranking"]
    assert len(found) == 1 and found[0].severity == "warning"
    assert "cannot read" in found[0].message and "cosine similarity" in found[0].message
    # 48 images, under MIN_IMAGES: repair removes what cannot be used
    report = check_library(copy, repair=True, files=False)
    assert f"removed the unusable {WHITENING_FILE}" in report.repaired
    assert report.ok and not (copy / WHITENING_FILE).exists()
    # from MIN_IMAGES on, a missing ranking is worth a warning, and repair learns it
    monkeypatch.setattr(tuner, "MIN_IMAGES", 40)
    found = [f for f in check_library(copy, files=False).findings if f.area == "ranking"]
    assert found and "no ranking learned" in found[0].message
    report = check_library(copy, repair=True, files=False)
    assert "learned the ranking" in report.repaired
    assert not [f for f in report.findings if f.area == "ranking"]
    with Library.open(copy) as library:
        assert library.whitening is not None


def test_diffusion_reaches_along_a_chain_of_neighbours_before_closer_strangers():
    """The query and a chain of pictures along an arc away from it, each close to the next;
    a tight cluster of strangers is closer to the query than the far end of the chain, but
    not among its nearest neighbours: diffusion ranks the whole chain first, in its order,
    where similarity alone would put the strangers above the chain's far half."""
    query = np.array([1.0, 0.0, 0.0])
    angles = np.radians(np.arange(10, 100, 10))
    chain = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
    rng = np.random.default_rng(0)
    strangers = _unit(np.array([np.cos(np.radians(60)), 0.0, np.sin(np.radians(60))]) + rng.normal(0, 0.01, (6, 3)))  # fmt: skip
    candidates = np.vstack([strangers, chain]).astype(np.float32)  # strangers first, on purpose
    order = diffusion_order(query.astype(np.float32), candidates, neighbours=3).tolist()
    assert order[:9] == list(range(6, 15))  # the chain, nearest first
    # unreached, the strangers follow by their similarity to the query
    similarity = strangers @ query
    assert order[9:] == list(np.argsort(-similarity))
    assert sorted(np.argsort(-(candidates @ query))[:9].tolist()) != list(range(6, 15))
    # degenerate inputs
    assert diffusion_order(query, np.zeros((0, 3))).tolist() == []
    assert diffusion_order(query, chain[:1]).tolist() == [0]


def test_the_nearest_candidate_stays_first_where_diffusion_favours_a_cluster():
    """A lone candidate nearest the query (where an edited copy would be) and a cluster of
    look-alikes that reinforce each other: diffusion alone weighs a cluster member highest,
    but the nearest stays first; the rest follow the diffusion."""
    rng = np.random.default_rng(305)  # a draw where the two orders disagree (asserted)
    query = _unit(rng.normal(0, 1, (1, 8)))[0]
    centre = _unit(query + 0.5 * _unit(rng.normal(0, 1, (1, 8))))[0]
    cluster = _unit(centre + rng.normal(0, 0.1, (10, 8)))
    lone = _unit(query + 0.4 * _unit(rng.normal(0, 1, (1, 8))))
    others = _unit(rng.normal(0, 1, (10, 8)))
    candidates = np.vstack([cluster, lone, others]).astype(np.float32)
    query = query.astype(np.float32)
    weights = diffusion_weights(query, candidates, 5, 0.6)
    assert int(np.argmax(candidates @ query)) == 10 and int(np.argmax(weights)) != 10
    order = diffusion_order(query, candidates, neighbours=5, alpha=0.6).tolist()
    assert order[0] == 10
    reached = [
        i for i in np.argsort(-weights, kind="stable").tolist() if i != 10 and weights[i] > 0
    ]
    assert order[1 : 1 + len(reached)] == reached


def test_the_ranking_learned_depends_on_the_images_not_on_the_order_they_were_indexed(
    icon_library, tmp_path
):
    """Ids follow the order in which images were decoded, which varies between runs: the same
    images indexed in another order (other ids) learn the same ranking from the same sample."""
    from lookalike.ingest import Indexer
    from lookalike.sources import FolderSource

    root, folder, _ = icon_library
    halves = [tmp_path / "second", tmp_path / "first"]
    for n, icon in enumerate(sorted(folder.glob("*.png"))):
        target = halves[n < 24]
        target.mkdir(exist_ok=True)
        (target / icon.name).write_bytes(icon.read_bytes())
    other = tmp_path / "library"
    with Library.open(other, write=True) as library:
        Indexer(library, progress=False).run([FolderSource(halves[0]), FolderSource(halves[1])])
    learned = []
    for path in (root, other):
        with Library.open(path, write=True) as library:
            names = {r.id: r.first_place.source.rsplit("/", 1)[1] for r in library.catalog.images(library.catalog.vector_ids()).values()}  # fmt: skip
            report = tuner.tune(library, sample=30, progress=False)
            ids, vectors = library.catalog.vectors(sorted(names, key=names.get))
            details = library.catalog.details(ids, report.whitening.detail_dim)[1]
            learned.append((dict(zip(ids.tolist(), map(names.get, ids.tolist()))), report.whitening.apply(vectors, details)))  # fmt: skip
    (first_names, first), (second_names, second) = learned
    assert sorted(first_names.values()) == sorted(second_names.values())
    assert list(first_names) != list(second_names)  # other ids for the same icons
    # the same similarities under both rankings (the axes' signs may differ)
    np.testing.assert_allclose(first @ first.T, second @ second.T, atol=1e-3)
