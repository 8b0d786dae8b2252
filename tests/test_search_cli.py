"""Searching through the CLI: query kinds, duplicate collapsing, output shapes, errors."""

from __future__ import annotations

import http.server
import json
import threading
from functools import partial

import pytest
from PIL import Image, ImageFilter

from lookalike.library import Library

from .conftest import make_picture, save_picture

RESULT_KEYS = {
    "id", "score", "source", "member", "page_url", "title", "author", "licence",
    "width", "height", "format", "tier", "duplicates",
}  # fmt: skip


@pytest.fixture
def indexed(run_cli, picture_folder):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    return picture_folder


def test_json_lines_shape_one_line_per_query(run_cli, indexed):
    code, out, _ = run_cli(
        "search", "--json", "-k", "4", indexed / "pic00.png", indexed / "pic09.png"
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["query"] for line in lines] == [
        str(indexed / "pic00.png"),
        str(indexed / "pic09.png"),
    ]
    for line in lines:
        assert len(line["results"]) == 4
        for hit in line["results"]:
            assert set(hit) == RESULT_KEYS
            assert (hit["width"], hit["height"]) == (96, 96) and hit["format"] == "PNG"
        scores = [h["score"] for h in line["results"]]
        assert scores == sorted(scores, reverse=True)


def test_table_output_is_readable(run_cli, indexed):
    code, out, _ = run_cli("search", "-k", "2", indexed / "pic00.png")
    assert code == 0
    assert out.splitlines()[0] == f"query: {indexed / 'pic00.png'}"
    assert "96x96" in out and str(indexed / "pic00.png") in out


def test_id_query_leaves_the_image_itself_out(run_cli, indexed):
    _, out, _ = run_cli("search", "--json", "-k", "1", indexed / "pic05.png")
    own_id = json.loads(out)["results"][0]["id"]
    code, out, _ = run_cli("search", "--json", "-k", "3", f"id:{own_id}")
    assert code == 0
    ids = [h["id"] for h in json.loads(out)["results"]]
    assert own_id not in ids and len(ids) == 3


def test_near_duplicates_collapse_into_one_hit(run_cli, tmp_path, library_path):
    # Smooth, photo-like pictures: what the threshold was measured to separate cleanly.
    def photo(seed):
        return make_picture(seed, size=(320, 320)).filter(ImageFilter.GaussianBlur(3))

    folder = tmp_path / "dups"
    folder.mkdir()
    original = photo(42)
    original.save(folder / "original.png")
    original.save(folder / "same pixels.bmp")  # other bytes, identical picture
    original.resize((256, 256), Image.LANCZOS).save(folder / "smaller.png")
    for seed in range(8):
        photo(100 + seed).save(folder / f"other{seed}.png")
    run_cli("index", folder)

    code, out, _ = run_cli("search", "--json", "-k", "3", folder / "original.png")
    hits = json.loads(out)["results"]
    group = {"original.png", "same pixels.bmp", "smaller.png"}
    name = lambda hit: hit["source"].rsplit("/", 1)[1]  # noqa: E731
    # identical pixels score identically, so either may lead; the other two fold into it
    assert {name(hits[0])} | {name(d) for d in hits[0]["duplicates"]} == group
    assert len(hits[0]["duplicates"]) == 2
    assert all(d["score"] > 0.97 for d in hits[0]["duplicates"])
    assert all(name(h) not in group and h["duplicates"] == [] for h in hits[1:])

    _, out, _ = run_cli("search", "--json", "--no-collapse", "-k", "3", folder / "original.png")
    names = [h["source"].rsplit("/", 1)[1] for h in json.loads(out)["results"]]
    assert sorted(names) == ["original.png", "same pixels.bmp", "smaller.png"]


def test_url_query_against_a_local_http_server(run_cli, indexed, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "query image.png").write_bytes((indexed / "pic08.png").read_bytes())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        code, out, _ = run_cli("search", "--json", "-k", "1", f"{base}/query%20image.png")
        assert code == 0
        assert json.loads(out)["results"][0]["source"].endswith("pic08.png")
        code, out, _ = run_cli("search", "--json", f"{base}/missing.png")
        assert code == 1 and "HTTP 404" in json.loads(out)["error"]
    finally:
        server.shutdown()


def test_bad_queries_give_clear_errors_and_the_good_ones_still_run(run_cli, indexed, tmp_path):
    (tmp_path / "junk.png").write_text("not an image")
    code, out, _ = run_cli(
        "search",
        "--json",
        tmp_path / "nope.png",
        tmp_path / "junk.png",
        "id:999999",
        indexed / "pic01.png",
    )
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert "no such file" in lines[0]["error"]
    assert "cannot read the query image" in lines[1]["error"]
    assert "no indexed image with id 999999" in lines[2]["error"]
    assert "error" not in lines[3] and lines[3]["results"]


def test_search_without_a_library_says_how_to_make_one(run_cli, tmp_path):
    save_picture(tmp_path / "q.png", 1)
    code, _, err = run_cli("search", tmp_path / "q.png")
    assert code == 1 and "no library at" in err and "lookalike index" in err


def test_stats_and_export(run_cli, indexed, library_path, tmp_path):
    code, out, _ = run_cli("stats", "--json")
    stats = json.loads(out)
    assert stats["images"] == 12 and stats["status"]["indexed"] == 12
    assert stats["model_id"] == "effnet-lite0@4" and stats["dim"] == 1280
    assert stats["index"] == {"type": "flat", "vectors": 12}
    assert stats["bytes_on_disk"]["catalog.sqlite3"] > 0
    code, out, _ = run_cli("stats")
    assert "12 indexed" in out and "flat, 12 vectors" in out

    target = tmp_path / "catalog.tsv"
    code, _, err = run_cli("export", "--output", target)
    assert code == 0 and "wrote 12 rows" in err
    header, *rows = target.read_text().splitlines()
    assert header.split("\t")[:3] == ["id", "sha256", "byte_size"]
    assert any(r.split("\t")[9].endswith("sub folder/pic10.png") for r in rows)


def test_a_library_refuses_a_second_model(run_cli, indexed, library_path):
    with Library.open(library_path, write=True) as library:
        with library.catalog.transaction():
            library.catalog.set_meta("model", "some-other-model")
    code, _, err = run_cli("index", "--model", "effnet-lite0", indexed)
    assert code == 1 and "never mixes models" in err


def test_a_second_writer_is_refused_with_a_clear_message(run_cli, indexed, library_path):
    with Library.open(library_path, write=True):
        code, _, err = run_cli("index", indexed)
        assert code == 1 and "being written by lookalike pid" in err
        # searches still work while a writer holds the library
        code, _, _ = run_cli("search", indexed / "pic00.png")
        assert code == 0
