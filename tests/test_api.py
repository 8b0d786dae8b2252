"""The REST API through httpx (Starlette's TestClient): every endpoint, errors, API keys."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.server import ServerSettings, create_app

from .conftest import make_picture

KEY = {"X-API-Key": "s3cret"}


def png_bytes(seed: int, size=(96, 96)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def client(run_cli, picture_folder, library_path):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    app = create_app(library_path, ServerSettings(api_key="s3cret", max_upload_bytes=200_000))
    with TestClient(app) as c:
        c.folder = picture_folder
        yield c


def upload(client, path, data, **fields):
    return client.post(path, files={"file": ("q.png", data, "image/png")}, data=fields)


def test_health_stats_and_openapi(client):
    assert client.get("/healthz").json() == {
        "status": "ok",
        "images": 12,
        "model": "effnet-lite0@4",
        "text": False,
    }
    stats = client.get("/api/v1/stats").json()
    assert stats["images"] == 12 and stats["index"]["vectors"] == 12
    picked = {client.get("/api/v1/random").json()["id"] for _ in range(15)}
    assert len(picked) > 1 and picked <= set(range(1, 13))
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/search",
        "/api/v1/extract",
        "/api/v1/images/{image_id}",
        "/api/v1/images",
    ):
        assert path in paths


def test_extract_returns_the_model_vector(client):
    body = upload(client, "/api/v1/extract", png_bytes(3)).json()
    assert body["model"] == "effnet-lite0@4" and body["dim"] == 1280 and len(body["vector"]) == 1280
    assert abs(sum(v * v for v in body["vector"]) - 1.0) < 1e-2


def test_search_by_upload_finds_the_same_image_as_exact(client):
    data = (client.folder / "pic04.png").read_bytes()
    body = upload(client, "/api/v1/search", data, k="3").json()
    top = body["results"][0]
    assert top["source"].endswith("pic04.png") and top["tier"] == "exact" and top["score"] > 0.99
    assert body["query"]["kind"] == "upload" and body["k"] == 3 and len(body["results"]) == 3
    assert top["thumbnail"] == f"/api/v1/images/{top['id']}/thumbnail"


def test_search_by_id_pages_through_results(client):
    first = client.post("/api/v1/search", json={"id": 1, "k": 4}).json()
    second = client.post("/api/v1/search", json={"id": 1, "k": 4, "offset": 4}).json()
    ids = [h["id"] for h in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 8 and 1 not in ids
    assert first["has_more"] is True
    last = client.get("/api/v1/images/1/similar", params={"k": 20, "offset": 8}).json()
    assert last["has_more"] is False and len(last["results"]) == 3  # 11 others in all


def test_search_by_url_with_a_local_server(client, tmp_path):
    import http.server
    from functools import partial

    (tmp_path / "q.png").write_bytes((client.folder / "pic06.png").read_bytes())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/q.png"
    try:
        refused = client.post("/api/v1/search", json={"url": url})
        assert refused.status_code == 400 and "non-public address" in refused.json()["detail"]
        client.app.state.service.allow_private_urls = True
        body = client.post("/api/v1/search", json={"url": url, "k": 1}).json()
        assert body["results"][0]["source"].endswith("pic06.png")
    finally:
        server.shutdown()


def test_filters_combine_with_the_vector_search(client):
    jpeg = io.BytesIO()
    make_picture(77).save(jpeg, "JPEG")
    added = client.post("/api/v1/images", headers=KEY,
                        files={"file": ("art.jpg", jpeg.getvalue(), "image/jpeg")},
                        data={"licence": "CC0", "author": "Ann", "title": "Art"})  # fmt: skip
    assert added.status_code == 201
    new_id = added.json()["id"]
    for params in ({"format": "jpeg"}, {"licence": "cc0"}, {"author": "ann"}, {"site": "uploads"}):
        body = client.get("/api/v1/images/1/similar", params={"k": 5, **params}).json()
        assert [h["id"] for h in body["results"]] == [new_id], params
    assert client.get("/api/v1/images/1/similar", params={"min_width": 97}).json()["results"] == []


def test_image_thumbnail_and_file(client):
    image = client.get("/api/v1/images/2").json()
    assert image["width"] == 96 and image["places"][0]["source"].endswith(".png")
    thumb = client.get("/api/v1/images/2/thumbnail", params={"size": 64})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)
    assert client.get("/api/v1/images/2/thumbnail", params={"size": 64}).content == thumb.content
    original = client.get("/api/v1/images/2/file")
    assert original.headers["content-type"] == "image/png"
    assert (
        original.content
        == (client.folder / image["places"][0]["source"].rsplit("/", 1)[1]).read_bytes()
    )


def test_add_by_upload_and_url_then_delete(client, tmp_path):
    data = png_bytes(500)
    assert upload(client, "/api/v1/images", data).status_code == 401  # no key
    sneaky = client.post(
        "/api/v1/images", headers=KEY, files={"file": ("../../..", png_bytes(501), "image/png")}
    )
    assert sneaky.status_code == 201
    assert sneaky.json()["image"]["places"][0]["source"].endswith("/upload")
    created = client.post("/api/v1/images", headers=KEY, files={"file": ("new one.png", data, "image/png")},
                          data={"title": "New", "tags": "a, b"})  # fmt: skip
    assert created.status_code == 201 and created.json()["created"] is True
    image_id = created.json()["id"]
    place = created.json()["image"]["places"][0]
    assert (
        place["title"] == "New"
        and place["tags"] == ["a", "b"]
        and place["source"].endswith("new one.png")
    )
    again = client.post("/api/v1/images", headers=KEY, files={"file": ("x.png", data, "image/png")})
    assert again.status_code == 200 and again.json() == {
        **again.json(),
        "id": image_id,
        "created": False,
    }
    top = upload(client, "/api/v1/search", data, k="1").json()["results"][0]
    assert top["id"] == image_id and client.get(f"/api/v1/images/{image_id}/file").content == data

    assert client.delete(f"/api/v1/images/{image_id}").status_code == 401
    assert client.delete(f"/api/v1/images/{image_id}", headers=KEY).status_code == 204
    assert client.get(f"/api/v1/images/{image_id}").status_code == 404
    assert client.delete(f"/api/v1/images/{image_id}", headers=KEY).status_code == 404
    top = upload(client, "/api/v1/search", data, k="1").json()["results"][0]
    assert top["id"] != image_id


def test_errors_are_json_with_clear_messages(client):
    def detail(response, status):
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert "no file" in detail(
        client.post("/api/v1/search", data={"k": "3"}, files={"x": ("a", b"1")}), 400
    )
    assert "not an image" in detail(upload(client, "/api/v1/search", b"hello, not a picture"), 400)
    assert "empty" in detail(upload(client, "/api/v1/search", b""), 400)
    assert "larger than" in detail(upload(client, "/api/v1/search", b"\0" * 300_000), 413)
    assert "multipart/form-data" in detail(
        client.post("/api/v1/search", content=b"x", headers={"content-type": "text/plain"}), 415
    )
    assert "k:" in detail(client.post("/api/v1/search", json={"id": 1, "k": 0}), 422)
    assert "k:" in detail(client.get("/api/v1/images/1/similar", params={"k": "many"}), 422)
    assert "exactly one" in detail(client.post("/api/v1/search", json={"k": 3}), 400)
    assert "not valid JSON" in detail(
        client.post("/api/v1/search", content=b"{", headers={"content-type": "application/json"}),
        400,
    )
    assert "no indexed image with id 999" in detail(
        client.post("/api/v1/search", json={"id": 999}), 404
    )
    assert "no image with id 999" in detail(client.get("/api/v1/images/999"), 404)
    assert "size must be one of" in detail(
        client.get("/api/v1/images/1/thumbnail", params={"size": 7}), 422
    )
    assert "http(s)" in detail(
        client.post("/api/v1/search", json={"url": "file:///etc/passwd"}), 400
    )
    assert detail(client.get("/api/v1/nothing-here"), 404) == "Not Found"


def test_files_whose_source_vanished_give_404_not_500(client):
    (client.folder / "pic09.png").unlink()
    image_id = next(
        h["id"] for h in upload(client, "/api/v1/search", png_bytes(9), k="1").json()["results"]
    )
    response = client.get(f"/api/v1/images/{image_id}/file")
    assert response.status_code == 404 and "no longer available" in response.json()["detail"]


def test_read_key_guards_reads_when_set(run_cli, picture_folder, library_path):
    run_cli("index", picture_folder)
    app = create_app(library_path, ServerSettings(read_key="r3ad"))
    with TestClient(app) as c:
        assert c.get("/api/v1/images/1").status_code == 401
        assert c.get("/api/v1/images/1", headers={"X-API-Key": "wrong"}).status_code == 401
        assert (
            c.get("/api/v1/images/1", headers={"Authorization": "Bearer r3ad"}).status_code == 200
        )
        assert upload(c, "/api/v1/images", png_bytes(1)).status_code == 403  # no write key at all
        assert c.get("/healthz").status_code == 200


def test_cors_is_configurable(run_cli, picture_folder, library_path):
    run_cli("index", picture_folder)
    app = create_app(library_path, ServerSettings(cors_origins=("https://art.example",)))
    with TestClient(app) as c:
        ok = c.get("/api/v1/images/1", headers={"Origin": "https://art.example"})
        assert ok.headers["access-control-allow-origin"] == "https://art.example"
        other = c.get("/api/v1/images/1", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_searches_run_in_parallel_with_an_add(client):
    """Many searches at once while images are added: no errors, and the adds are found."""
    queries = [(client.folder / f"pic{i:02d}.png").read_bytes() for i in range(10)]
    new = [png_bytes(600 + i) for i in range(4)]

    def search(i):
        r = upload(client, "/api/v1/search", queries[i % 10], k="1")
        return r.status_code, r.json()["results"][0]["source"]

    def add(data):
        return client.post(
            "/api/v1/images", headers=KEY, files={"file": ("n.png", data, "image/png")}
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        searches = [pool.submit(search, i) for i in range(40)]
        adds = [pool.submit(add, d) for d in new]
        results = [f.result() for f in searches]
        assert [a.result() for a in adds] == [201] * 4
    assert all(code == 200 for code, _ in results)
    assert all(src.endswith(f"pic{i % 10:02d}.png") for i, (_, src) in enumerate(results))
    assert client.get("/healthz").json()["images"] == 16
    for data in new:
        assert upload(client, "/api/v1/search", data, k="1").json()["results"][0]["tier"] == "exact"


def test_index_changes_from_the_cli_are_picked_up(client, run_cli, tmp_path):
    from .conftest import save_picture

    more = tmp_path / "more"
    save_picture(more / "late.png", 4242)
    code, _, _ = run_cli("index", more)
    assert code == 0
    client.app.state.service._last_refresh = 0  # no need to wait out the refresh interval
    body = upload(client, "/api/v1/search", (more / "late.png").read_bytes(), k="1").json()
    assert body["results"][0]["source"].endswith("late.png")


def test_add_by_url_keeps_the_file_in_the_download_cache(client, tmp_path):
    import http.server
    from functools import partial

    data = png_bytes(700)
    (tmp_path / "web art.png").write_bytes(data)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/web%20art.png"
    try:
        body = {"url": url, "title": "Web Art", "licence": "CC-BY 4.0"}
        refused = client.post("/api/v1/images", headers=KEY, json=body)
        assert refused.status_code == 400 and "non-public" in refused.json()["detail"]
        client.app.state.service.allow_private_urls = True
        added = client.post("/api/v1/images", headers=KEY, json=body)
    finally:
        server.shutdown()
    assert added.status_code == 201
    place = added.json()["image"]["places"][0]
    assert place["source"] == f"http://127.0.0.1:{server.server_port}/web art.png"
    assert (place["title"], place["licence"]) == ("Web Art", "CC-BY 4.0")
    # the server is gone: the file comes from the download cache
    assert client.get(f"/api/v1/images/{added.json()['id']}/file").content == data


def test_images_added_through_the_api_learn_the_librarys_ranking(client, monkeypatch):
    """A library filled through the API learns its ranking as `lookalike index` would: once
    it holds MIN_IMAGES, in the service's background thread, reading without the write lock."""
    from lookalike.library import WHITENING_FILE, Library
    from lookalike.tuning import tuner

    service = client.app.state.service
    before = client.get("/api/v1/stats").json()["images"]
    monkeypatch.setattr(tuner, "MIN_IMAGES", before + 3)
    assert not service.learn_ranking_if_due()  # below MIN_IMAGES
    for seed in range(3):
        added = client.post("/api/v1/images", headers=KEY, files={"file": (f"a{seed}.png", png_bytes(900 + seed), "image/png")})  # fmt: skip
        assert added.status_code == 201
    assert service.learn_ranking_if_due()
    assert not service.learn_ranking_if_due()  # learnt: due again once the library doubles
    with Library.open(service.root) as library:
        whitening = library.whitening
        assert whitening is not None and whitening.library_size == before + 3
        ids, vectors = library.catalog.vectors([added.json()["id"]])
    # searches rank under it from now on: a picture query's scores are similarities under it
    found = upload(client, "/api/v1/search", png_bytes(900 + 2), k=3).json()["results"]
    assert len(found) == 3 and found[0]["id"] == int(ids[0]) and found[0]["tier"] == "exact"
    with Library.open(service.root) as library:
        vectors, details = library.embedder.embed_images_with_details([make_picture(902, size=(96, 96))])  # fmt: skip
        assert (
            whitening.detail_dim and len(library.catalog.details(ids, whitening.detail_dim)[0]) == 1
        )  # API adds too
        for hit in found[1:]:
            _, vector = library.catalog.vectors([hit["id"]])
            _, detail = library.catalog.details([hit["id"]], whitening.detail_dim)
            mapped = whitening.apply(np.vstack([vector[0], vectors[0]]), np.vstack([detail[0], details[0]]))  # fmt: skip
            assert hit["score"] == pytest.approx(float(mapped[0] @ mapped[1]), abs=2e-3)
    assert (service.root / WHITENING_FILE).exists()


def test_a_library_of_recolours_added_through_the_api_is_told_so(client, monkeypatch, caplog):
    """The service learns the ranking as `lookalike tune` does, and logs tune's note when
    most pictures are palette swaps of one another (tuning/recolours.py)."""
    import logging

    from lookalike.tuning import tuner

    from .test_recolours import sprite

    service = client.app.state.service
    before = client.get("/api/v1/stats").json()["images"]
    monkeypatch.setattr(tuner, "MIN_IMAGES", before + 18)
    for layout in range(6):
        for palette in range(3):
            buffer = io.BytesIO()
            sprite(layout, palette).save(buffer, "PNG")
            files = {"file": (f"s{layout}-{palette}.png", buffer.getvalue(), "image/png")}
            assert client.post("/api/v1/images", headers=KEY, files=files).status_code == 201
    with caplog.at_level(logging.INFO, logger="lookalike"):
        assert service.learn_ranking_if_due()
    share = 18 / (before + 18)  # every sprite has two recolours; the fixture's pictures none
    assert f"{share:.0%} of the library's pictures are recolours" in caplog.text, caplog.text
    # the service does not re-embed while it serves; its library was made without --model,
    # so the note names the tune that would
    assert "`lookalike tune` re-embeds this library" in caplog.text, caplog.text
    assert service.library().model_name == "effnet-lite0"


def test_the_services_background_thread_learns_the_ranking_by_itself(
    run_cli, picture_folder, library_path, monkeypatch
):
    from lookalike.library import WHITENING_FILE
    from lookalike.server.service import LibraryService
    from lookalike.tuning import tuner

    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    service = LibraryService(library_path, save_every=0.05)
    try:
        monkeypatch.setattr(tuner, "MIN_IMAGES", len(service.index) + 2)
        for seed in (910, 911):
            data = png_bytes(seed)
            service.add_image(data, service.upload_place(data, f"{seed}.png"))
        deadline = time.monotonic() + 60
        while not (library_path / WHITENING_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (library_path / WHITENING_FILE).exists()
        assert service.library().whitening.library_size == len(service.index)
    finally:
        service.close()
