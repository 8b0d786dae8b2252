"""Choosing models through the CLI and the API: `lookalike models`, a library's model, search
by text (and mixed queries), and `reindex --model`, with random-weight files for the torch
models (see model_weights.py)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.catalog import staged_ids
from lookalike.embed import MODELS, create_embedder
from lookalike.ingest import reembed
from lookalike.library import Library
from lookalike.search.expressions import ExpressionError, Term, parse_expression
from lookalike.server import ServerSettings, create_app

from .archive_makers import make_zip
from .conftest import make_picture


def png(seed: int, size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, "PNG")
    return buf.getvalue()


def search_json(run_cli, *args, weights=None) -> list[dict]:
    code, out, err = run_cli(*(("-W", weights) if weights else ()), "search", "--json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def clip_library(run_cli, picture_folder, random_weights):
    weights = random_weights("clip-vit-b-32")
    code, _, err = run_cli("-W", weights, "index", "-q", "--model", "clip-vit-b-32", picture_folder)
    assert code == 0, err
    return weights


# -- lookalike models -----------------------------------------------------------------------------


def test_models_lists_each_model_with_its_dimension_text_and_weights(run_cli, random_weights):
    code, out, _ = run_cli("models")
    assert code == 0
    for name, info in MODELS.items():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert str(info.dim) in row.split()
        assert (" yes " in row) == (name == "clip-vit-b-32")
    code, out, _ = run_cli("models", "--json")
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == set(MODELS) and rows["effnet-lite0"]["default"]
    assert rows["effnet-lite0"]["weights"] == "shipped"
    assert rows["resnet50"]["weights"] == "missing (downloaded on first use)"
    assert rows["resnet50"]["source"].startswith("https://download.pytorch.org/models/")
    assert "MIT" in rows["clip-vit-b-32"]["licence"] and rows["clip-vit-b-32"]["text"]
    folder = random_weights("resnet50").parent  # a folder given with --weights is looked into
    code, out, _ = run_cli("-W", folder, "models", "--json")
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert rows["resnet50"]["weights"] == f"given: {folder / 'resnet50-11ad3fa6.pth'}"


# -- a library's model ----------------------------------------------------------------------------


def test_a_library_keeps_its_model_and_refuses_another(
    run_cli, picture_folder, library_path, random_weights
):
    weights = random_weights("resnet50")
    code, _, err = run_cli("-W", weights, "index", "-q", "--model", "resnet50", picture_folder)
    assert code == 0, err
    stats = json.loads(run_cli("stats", "--json")[1])
    assert stats["model"] == "resnet50" and stats["dim"] == 2048 and stats["index"]["vectors"] == 12
    code, _, err = run_cli("index", "--model", "clip-vit-b-32", picture_folder)
    assert code == 1
    assert "built with model 'resnet50', not 'clip-vit-b-32'" in err
    assert "lookalike reindex --model clip-vit-b-32" in err
    # the weights in the library's cache need no --weights afterwards
    shutil.copy(weights, library_path / "models" / weights.name)
    [result] = search_json(run_cli, str(picture_folder / "pic03.png"), "-k", "1")
    assert result["results"][0]["source"].endswith("pic03.png")
    assert result["results"][0]["tier"] == "exact"


# -- search by text -------------------------------------------------------------------------------


def test_search_by_text_ranks_pictures_by_their_dot_product(run_cli, library_path, clip_library):
    clip = create_embedder("clip-vit-b-32", weights=clip_library)
    with Library.open(library_path) as library:
        ids, vectors = library.catalog.vectors(library.catalog.vector_ids())
    text = clip.embed_text(["red dragon sprite"])[0].astype(np.float16).astype(np.float32)
    expected = sorted(zip(vectors @ text, ids.tolist()), reverse=True)
    [result] = search_json(
        run_cli, "--text", "red dragon sprite", "-k", "12", "--no-collapse", weights=clip_library
    )
    assert result["query"] == "red dragon sprite"
    got = [(r["score"], r["id"]) for r in result["results"]]
    assert [i for _, i in got] == [i for _, i in expected]
    assert np.allclose([s for s, _ in got], [s for s, _ in expected], atol=2e-4)


def test_mixed_queries_add_weighted_terms(run_cli, library_path, clip_library, picture_folder):
    clip = create_embedder("clip-vit-b-32", weights=clip_library)
    query = picture_folder / "pic05.png"
    with Library.open(library_path) as library:
        ids, vectors = library.catalog.vectors(library.catalog.vector_ids())
        image_3 = library.catalog.vectors([3])[1][0]
    cat, fruit = clip.embed_text(["cat", "fruit"])
    picture = clip.embed_images([make_picture(5)])[0].astype(np.float16).astype(np.float32)
    mixed = 2 * cat + picture - fruit + 0.5 * image_3
    mixed = (mixed / np.linalg.norm(mixed)).astype(np.float16).astype(np.float32)
    expected = sorted(zip(vectors @ mixed, ids.tolist()), reverse=True)
    [result] = search_json(
        run_cli, "--text", f'"2:cat" + {query} - fruit + 0.5:id:3', "-k", "12", "--no-collapse",
        weights=clip_library,
    )  # fmt: skip
    got = [(r["score"], r["id"]) for r in result["results"]]
    assert [i for _, i in got] == [i for _, i in expected]
    assert np.allclose([s for s, _ in got], [s for s, _ in expected], atol=2e-3)


def test_text_on_a_picture_model_is_a_clear_error(run_cli, picture_folder):
    assert run_cli("index", "-q", picture_folder)[0] == 0
    code, out, err = run_cli("search", "--text", "red dragon")
    assert code == 1 and out == ""
    assert "the model 'effnet-lite0' embeds pictures only, not text" in err
    # pictures alone still combine on any model
    [result] = search_json(run_cli, "--text", "id:1 + id:2", "-k", "2")
    assert {r["id"] for r in result["results"]} == {1, 2}
    code, _, err = run_cli("search")
    assert code == 2 and "give at least one QUERY" in err


@pytest.mark.parametrize(
    "expression, terms",
    [
        ("red dragon", [Term(1, "red dragon")]),
        ('"2:cat" + ./img.jpg - fruit', [Term(2, "cat"), Term(1, "./img.jpg"), Term(-1, "fruit")]),
        ("2:cat + id:42 - 0.5:fruit", [Term(2, "cat"), Term(1, "id:42"), Term(-0.5, "fruit")]),
        ("- fruit", [Term(-1, "fruit")]),
        ("spider-man + x-ray", [Term(1, "spider-man"), Term(1, "x-ray")]),
        ("id:7", [Term(1, "id:7")]),
        ("https://e.org/a.png - .5:night", [Term(1, "https://e.org/a.png"), Term(-0.5, "night")]),
    ],
)
def test_query_expressions(expression, terms):
    assert parse_expression(expression) == terms


@pytest.mark.parametrize("expression", ["", "cat + ", "2: + cat", "0:cat"])
def test_bad_query_expressions(expression):
    with pytest.raises(ExpressionError):
        parse_expression(expression)


def test_api_searches_by_text_and_says_when_it_cannot(run_cli, library_path, clip_library):
    app = create_app(library_path, ServerSettings(), weights=clip_library)
    with TestClient(app) as client:
        assert client.get("/healthz").json()["text"] is True
        page = client.post("/api/v1/search", json={"text": "red dragon", "k": 5}).json()
        assert page["query"] == {"kind": "text", "text": "red dragon"}
        assert page["model"] == "clip-vit-b-32@1" and len(page["results"]) == 5
        [cli] = search_json(run_cli, "--text", "red dragon", "-k", "5", weights=clip_library)
        assert [r["id"] for r in page["results"]] == [r["id"] for r in cli["results"]]
        # an upload plus text: a mixed query; a server path in the text is only text
        mixed = client.post(
            "/api/v1/search", files={"file": ("q.png", png(5), "image/png")},
            data={"text": "+ 2:cat - /etc/passwd", "k": "3"},
        )  # fmt: skip
        assert mixed.status_code == 200, mixed.text
        assert mixed.json()["query"]["kind"] == "upload+text"
        for body, why in (
            ({"text": "cat", "id": 1}, 'exactly one of "url", "id", "text"'),
            ({"text": "   "}, "nothing to search for"),
            ({"text": "cat + id:999"}, "no indexed image with id 999"),
        ):
            response = client.post("/api/v1/search", json=body)
            assert response.status_code == 400 and why in response.json()["detail"]


def test_api_text_on_a_picture_model_is_a_400(run_cli, picture_folder, library_path):
    assert run_cli("index", "-q", picture_folder)[0] == 0
    with TestClient(create_app(library_path, ServerSettings())) as client:
        assert client.get("/healthz").json()["text"] is False
        response = client.post("/api/v1/search", json={"text": "red dragon"})
        assert response.status_code == 400
        assert "embeds pictures only" in response.json()["detail"]


# -- reindex --model ------------------------------------------------------------------------------


@pytest.fixture
def mixed_sources(tmp_path):
    """Files and a zip's members: originals re-read from both kinds of place."""
    folder = tmp_path / "art"
    folder.mkdir()
    for seed in range(6):
        (folder / f"file{seed}.png").write_bytes(png(100 + seed))
    members = {f"pack/m{seed}.png": png(200 + seed) for seed in range(5)}
    (folder / "pack.zip").write_bytes(make_zip(members))
    return folder


def test_reindex_model_re_embeds_files_and_archive_members(
    run_cli, library_path, mixed_sources, random_weights
):
    assert run_cli("index", "-q", mixed_sources)[0] == 0
    weights = random_weights("resnet50")
    code, _, err = run_cli("-W", weights, "reindex", "--model", "resnet50", "-q")
    assert code == 0, err
    assert "11 of 11 images embedded with resnet50@1" in err
    assert "now uses resnet50@1 instead of effnet-lite0@4" in err
    stats = json.loads(run_cli("stats", "--json")[1])
    assert stats["model"] == "resnet50" and stats["model_id"] == "resnet50@1"
    assert stats["dim"] == 2048 and stats["status"]["indexed"] == 11
    assert stats["vectors_by_model"] == {"resnet50@1": 11}
    # each stored vector is the new model's embedding of the original
    resnet = create_embedder("resnet50", weights=weights)
    with Library.open(library_path) as library:
        assert library.index.dim == 2048 and len(library.index) == 11
        member = next(
            r for r in library.catalog.images(range(1, 12)).values() if r.places[0].member
        )
        stored = library.catalog.vectors([member.id])[1][0]
    original = make_picture(200 + int(member.places[0].member[-5]), (64, 64))
    assert np.allclose(stored, resnet.embed_images([original])[0], atol=2e-3)
    [result] = search_json(run_cli, str(mixed_sources / "file2.png"), "-k", "1", weights=weights)
    assert result["results"][0]["tier"] == "exact"
    with Library.open(library_path) as library:  # effnet-lite0's details went with its vectors
        assert library.catalog.detail_count(2736) == 0


def test_a_library_of_effnet_lite0_3_gets_its_details_from_reindex(
    run_cli, library_path, mixed_sources
):
    """effnet-lite0@4 has the vectors of @3 and adds details, which a library indexed with
    @3 lacks: it is refused until `reindex --model effnet-lite0` re-reads the originals."""
    assert run_cli("index", "-q", mixed_sources)[0] == 0
    with Library.open(library_path, write=True) as library:
        catalog = library.catalog
        _, vectors = catalog.vectors(range(1, 12))
        with catalog.transaction():  # what a library of effnet-lite0@3 holds
            catalog.conn.execute("UPDATE vectors SET detail = NULL")
            catalog.conn.execute("UPDATE images SET model = 'effnet-lite0@3'")
            catalog.set_meta("model_id", "effnet-lite0@3")
    code, _, err = run_cli("search", str(mixed_sources / "file2.png"))
    assert code != 0 and "made by effnet-lite0@3" in err
    assert "lookalike reindex --model effnet-lite0" in err
    code, _, err = run_cli("reindex", "--model", "effnet-lite0", "-q")
    assert code == 0, err
    with Library.open(library_path) as library:
        catalog = library.catalog
        assert catalog.get_meta("model_id") == "effnet-lite0@4"
        assert np.allclose(catalog.vectors(range(1, 12))[1], vectors, atol=1e-3)  # unchanged
        having, details = catalog.details(range(1, 12), library.embedder.detail_dim)
        assert len(having) == 11
        row, record = next(
            (row, catalog.image(int(i)))
            for row, i in enumerate(having)
            if not catalog.image(int(i)).places[0].member  # a file, not an archive member
        )
        with Image.open(record.places[0].source) as original:
            made = library.embedder.embed_images_with_details([original.convert("RGB")])[1]
        assert np.allclose(details[row], made[0], atol=2e-3)
    [result] = search_json(run_cli, str(mixed_sources / "file2.png"), "-k", "1")
    assert result["results"][0]["tier"] == "exact"


def test_an_interrupted_reindex_leaves_the_old_index_working_and_resumes(
    run_cli, library_path, mixed_sources, random_weights
):
    assert run_cli("index", "-q", mixed_sources)[0] == 0
    before = search_json(run_cli, str(mixed_sources / "file1.png"), "-k", "5")
    index_bytes = (library_path / "index.faiss").read_bytes()
    weights = random_weights("resnet50")
    batches = iter([False, False])  # two batches of 3, then Ctrl-C
    with Library.open(library_path, write=True) as library:
        report = reembed(
            library, "resnet50", weights=weights, batch_size=3,
            should_stop=lambda: next(batches, True), progress=False,
        )  # fmt: skip
        assert report.interrupted and not report.swapped and report.embedded == 6
        assert len(staged_ids(library.catalog, "resnet50@1")) == 6
    # nothing that search reads has changed
    assert (library_path / "index.faiss").read_bytes() == index_bytes
    assert search_json(run_cli, str(mixed_sources / "file1.png"), "-k", "5") == before
    assert json.loads(run_cli("stats", "--json")[1])["model_id"] == "effnet-lite0@4"
    # running again embeds only the rest
    code, _, err = run_cli("-W", weights, "reindex", "--model", "resnet50", "-q")
    assert code == 0, err
    assert "11 of 11 images embedded with resnet50@1 (5 in this run" in err
    with Library.open(library_path) as library:
        assert library.catalog.get_meta("model_id") == "resnet50@1"
        assert library.catalog.conn.execute("SELECT count(*) FROM staged_vectors").fetchone() == (
            0,
        )


def test_reindex_stops_before_switching_when_originals_are_gone(
    run_cli, library_path, mixed_sources, random_weights
):
    assert run_cli("index", "-q", mixed_sources)[0] == 0
    (mixed_sources / "file4.png").unlink()
    weights = random_weights("resnet50")
    code, _, err = run_cli("-W", weights, "reindex", "--model", "resnet50", "-q")
    assert code == 1 and "1 originals could not be read: still searching with effnet-lite0@4" in err
    assert "file4.png" in err
    assert json.loads(run_cli("stats", "--json")[1])["model"] == "effnet-lite0"
    code, _, err = run_cli("-W", weights, "reindex", "--model", "resnet50", "--drop-unreadable")
    assert code == 0, err
    stats = json.loads(run_cli("stats", "--json")[1])
    assert stats["model"] == "resnet50" and stats["status"]["failed"] == 1
    assert stats["index"]["vectors"] == 10


def test_a_crash_between_the_switch_and_the_index_save_is_repaired(
    run_cli, library_path, picture_folder, monkeypatch
):
    """effnet-lite0 -> effnet-lite0-grey: the same dimension, so only the recorded model tells
    that the saved index holds the old vectors."""
    assert run_cli("index", "-q", picture_folder)[0] == 0

    def crash(self, **kwargs):
        raise KeyboardInterrupt("killed after the switch")

    with Library.open(library_path, write=True) as library:
        monkeypatch.setattr(Library, "rebuild_index", crash)
        with pytest.raises(KeyboardInterrupt):
            reembed(library, "effnet-lite0-grey", progress=False)
        monkeypatch.undo()
    grey = create_embedder("effnet-lite0-grey")
    query = grey.embed_images([make_picture(4)])[0]
    with Library.open(library_path) as library:  # a reader: rebuilt in memory from the catalog
        assert library.model_name == "effnet-lite0-grey"
        (pic04,) = library.catalog.conn.execute(
            "SELECT image_id FROM places WHERE source LIKE '%pic04.png'"
        ).fetchone()
        scores, ids = library.index.search(query[None], 1)
        # the grey vector itself (the colour one would score well under 0.999)
        assert ids[0][0] == pic04 and scores[0][0] > 0.999
    with Library.open(library_path, write=True) as library:
        _ = library.index  # a writer saves the rebuilt index
        assert library.catalog.get_meta("index_model_id") == "effnet-lite0-grey@1"
    [result] = search_json(run_cli, str(picture_folder / "pic04.png"), "-k", "1")
    assert result["results"][0]["tier"] == "exact"


def test_a_running_server_says_to_restart_after_the_library_changed_model(
    run_cli, picture_folder, library_path
):
    assert run_cli("index", "-q", picture_folder)[0] == 0
    with TestClient(create_app(library_path, ServerSettings())) as client:
        assert client.post("/api/v1/search", json={"id": 1}).status_code == 200
        with Library.open(library_path, write=True) as library:
            assert reembed(library, "effnet-lite0-grey", progress=False).swapped
        client.app.state.service.refresh(at_most_every=0)
        response = client.post("/api/v1/search", json={"id": 1})
        assert response.status_code == 503
        assert "re-embedded with effnet-lite0-grey@1" in response.json()["detail"]
        assert "restart lookalike serve" in response.json()["detail"]


def test_reembedding_gives_images_from_before_schema_v6_their_tiny_pictures(
    run_cli, library_path, picture_folder
):
    """Tiny pictures (index/tiny.py) are made when an image is decoded; a library indexed
    before they existed gets them when `reindex --model` reads its images again."""
    assert run_cli("index", "-q", picture_folder)[0] == 0
    with Library.open(library_path, write=True) as library:
        made = dict(library.catalog.conn.execute("SELECT id, tiny FROM images").fetchall())
        assert made and all(len(t) == 144 for t in made.values())
        library.catalog.conn.execute("UPDATE images SET tiny = NULL")
        assert reembed(library, "effnet-lite0-grey", progress=False).swapped
        filled = dict(library.catalog.conn.execute("SELECT id, tiny FROM images").fetchall())
    assert filled == made
