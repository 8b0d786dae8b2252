"""Hostile input to the REST API over real HTTP (uvicorn on 127.0.0.1): oversized and chunked
uploads, API keys, path traversal and out-of-range ids, and the regressions the fuzzer found."""

from __future__ import annotations

import http.client
import io
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from lookalike.ingest import index_paths
from lookalike.library import Library
from lookalike.server import ServerSettings, create_app

from .conftest import make_picture, save_picture
from .live_server import live_server

KEY = "k3y-for-writes"
LIMIT = 100_000


def png_bytes(seed: int, size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, "PNG")
    return buf.getvalue()


def multipart(data: bytes, boundary: str = "b0undary") -> tuple[bytes, dict]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def indexed(run_cli, picture_folder, library_path):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    return library_path


@pytest.fixture
def server(indexed):
    """A server of one's own, for tests that write."""
    app = create_app(indexed, ServerSettings(api_key=KEY, max_upload_bytes=LIMIT))
    with live_server(app) as base:
        yield base


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the many read-only cases (ids 1-6; pic03 is the image of seed 3)."""
    root = tmp_path_factory.mktemp("limits")
    for seed in range(6):
        save_picture(root / "pictures" / f"pic{seed:02d}.png", seed)
    with Library.open(root / "library", write=True) as library:
        index_paths(library, [root / "pictures"], progress=False)
    app = create_app(root / "library", ServerSettings(api_key=KEY, max_upload_bytes=LIMIT))
    with live_server(app) as base:
        yield base


# -- upload limits --------------------------------------------------------------------------


def test_an_upload_over_the_limit_is_refused_with_413(shared):
    body, headers = multipart(b"\x89PNG" + b"\0" * (LIMIT + 1))
    response = httpx.post(f"{shared}/api/v1/search", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": f"upload larger than {LIMIT:,} bytes"}


def test_a_chunked_upload_without_content_length_is_cut_off_too(shared):
    """A client that declares no length (chunked) still gets a 413, as soon as the body has
    passed the limit: it is counted as it streams, not read to the end (Starlette's form
    parser alone would spool all of it to a temporary file before the route saw its size)."""
    total = 64 * 2**20
    sent = 0

    def chunks():
        nonlocal sent
        head, _ = multipart(b"")
        yield head[: head.index(b"\r\n\r\n") + 4]
        block = b"\0" * 65_536
        while sent < total:
            sent += len(block)
            yield block

    _, headers = multipart(b"")
    try:
        response = httpx.post(f"{shared}/api/v1/search", content=chunks(), headers=headers)
    except httpx.HTTPError as exc:  # the server may close before the client sends it all
        pytest.fail(f"no 413 answer: {exc!r}")
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json()["detail"] == f"upload larger than {LIMIT:,} bytes"
    assert sent < total / 2  # the server stopped reading: only socket buffers took the rest


def test_a_chunked_upload_under_the_limit_is_searched(server, picture_folder):
    body, headers = multipart((picture_folder / "pic03.png").read_bytes())
    response = httpx.post(
        f"{server}/api/v1/search", content=iter([body[:100], body[100:]]), headers=headers
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["source"].endswith("pic03.png")


def test_a_json_body_over_the_limit_is_refused_too(shared):
    response = httpx.post(
        f"{shared}/api/v1/search",
        content=iter([b'{"url": "', b"a" * (2 * LIMIT), b'"}']),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


# -- API keys -------------------------------------------------------------------------------


def test_writes_need_the_key(server):
    files = {"file": ("n.png", png_bytes(800), "image/png")}
    add = f"{server}/api/v1/images"
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {KEY}"}, {"X-API-Key": KEY[:-1]}):  # fmt: skip
        response = httpx.post(add, files=files, headers=headers)
        assert response.status_code == 401, headers
        assert "needs an API key" in response.json()["detail"]
        assert httpx.delete(f"{server}/api/v1/images/1", headers=headers).status_code == 401
    assert httpx.get(f"{server}/api/v1/images/1").status_code == 200  # reads stay open
    assert httpx.post(add, files=files, headers={"X-API-Key": KEY}).status_code == 201
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.delete(f"{server}/api/v1/images/1", headers=bearer).status_code == 204


def test_without_a_configured_key_writes_are_off(indexed):
    with TestClient(create_app(indexed, ServerSettings())) as client:
        response = client.delete("/api/v1/images/1", headers={"X-API-Key": ""})
        assert response.status_code == 403 and "writes are disabled" in response.json()["detail"]


def test_keys_are_compared_in_constant_time(indexed, monkeypatch):
    import lookalike.server.routes.shared as api

    calls = []

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    real = api.hmac.compare_digest
    monkeypatch.setattr(api.hmac, "compare_digest", spy)
    with TestClient(create_app(indexed, ServerSettings(api_key=KEY))) as client:
        assert client.delete("/api/v1/images/1", headers={"X-API-Key": "guess"}).status_code == 401
    assert calls == [(b"guess", KEY.encode())]


# -- no way out of the library through the routes -------------------------------------------


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written: httpx would resolve the dot segments itself."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/images/../../../../etc/passwd",
        "/api/v1/images/1/file/../../../../../etc/passwd",
        "/api/v1/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd/file",
        "/api/v1/images/..%2f..%2f..%2fetc%2fpasswd/file",
        "/api/v1/images/%2Fetc%2Fpasswd/file",
        "/api/v1/images//etc/passwd/thumbnail",
        "/api/v1/images/1/thumbnail?size=../../../etc/passwd",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fserver%2fapp.py",
        "/static/%2e%2e%2fapp.py",
        "/static//etc/passwd",
        "/static/index.html%00.py",
    ],
)
def test_no_path_traversal(shared, path):
    status, body = raw_get(shared, path)
    assert status in (400, 404, 422), (status, body[:200])
    assert b"root:" not in body and b"def create_app" not in body


@pytest.mark.parametrize(
    "image_id, status",
    [
        ("abc", 422),
        ("1.5", 422),
        ("1e3", 422),
        ("-1", 422),
        ("0", 422),
        ("9223372036854775808", 422),  # 2**63: was a 500 (SQLite OverflowError)
        ("99999999999999999999999999999999", 422),
        ("9223372036854775807", 404),  # 2**63 - 1: a valid id that is not there
        ("%31", 200),  # "1", percent-encoded
    ],
)
def test_ids_out_of_range_are_client_errors(shared, image_id, status):
    for route in ("", "/file", "/thumbnail", "/similar"):
        response = httpx.get(f"{shared}/api/v1/images/{image_id}{route}")
        assert response.status_code == status, (route, response.text)
        if status != 200:
            assert response.headers["content-type"] == "application/json"
            assert response.json()["detail"]


@pytest.mark.parametrize("size", ["0", "-1", "7", "255", "100000", "abc", "1e2", str(2**70), ""])
def test_thumbnail_sizes_out_of_range_are_422(shared, size):
    response = httpx.get(f"{shared}/api/v1/images/1/thumbnail", params={"size": size})
    assert response.status_code == 422 and "size" in response.json()["detail"]


# -- regressions found by tests/test_api_fuzz.py ------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (b"\x80", "not UTF-8"),  # was a 500: UnicodeDecodeError
        (b'{"id": 1}\xff', "not UTF-8"),
        (b"\x00\x00\x00{\x00", "not UTF-8"),  # UTF-32 to json.loads, cut short: was a 500
        (b"[" * 100_000, "nested too deeply"),  # was a 500: RecursionError
    ],
)
def test_json_bodies_that_are_not_text_are_400(shared, body, message):
    for path in ("/api/v1/search", "/api/v1/images"):
        response = httpx.post(
            f"{shared}{path}",
            content=body,
            headers={"Content-Type": "application/json", "X-API-Key": KEY},
        )
        assert response.status_code == 400, (path, response.text)
        assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": 2**63},  # was a 500 (OverflowError in SQLite)
        {"id": 0},
        {"id": 1, "min_width": 2**63},  # the filters reach SQL as well
        {"id": 1, "min_height": 2**64},
    ],
)
def test_search_numbers_out_of_range_are_422(shared, body):
    response = httpx.post(f"{shared}/api/v1/search", json=body)
    assert response.status_code == 422, response.text
    filters = {k: v for k, v in body.items() if k != "id"}
    if filters:
        response = httpx.get(f"{shared}/api/v1/images/1/similar", params=filters)
        assert response.status_code == 422, response.text


# -- a slow client-chosen URL must not stall the server -------------------------------------


def test_a_slow_url_search_does_not_hold_up_other_requests(indexed, picture_folder):
    """URL searches fetch from wherever the client says, perhaps slowly; the fetch (and the
    decode and embed after it) used to run on the event loop, stalling every request."""
    import http.server
    import threading
    import time

    image = (picture_folder / "pic05.png").read_bytes()

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(3)
            self.send_response(200)
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    app = create_app(indexed, ServerSettings(allow_private_urls=True))
    try:
        with live_server(app) as base:
            url = f"http://127.0.0.1:{slow.server_port}/slow.png"
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(httpx.post, f"{base}/api/v1/search", json={"url": url})
                time.sleep(0.5)  # the URL search is waiting on the slow server now
                started = time.monotonic()
                assert httpx.get(f"{base}/healthz").status_code == 200
                assert httpx.post(f"{base}/api/v1/search", json={"id": 1}).status_code == 200
                assert time.monotonic() - started < 1.5
                found = pending.result(timeout=60)
            assert found.status_code == 200
            assert found.json()["results"][0]["source"].endswith("pic05.png")
    finally:
        slow.shutdown()


@pytest.mark.parametrize(
    "url", ["http://[", "http://[::1/x.png", "http://example.org:99999/x.png", "http://a:-1/x"]
)
def test_malformed_urls_are_400(shared, url):
    """Found by hand, not by the fuzzer: each was a 500 (ValueError from urlsplit or .port)."""
    for path in ("/api/v1/search", "/api/v1/images"):
        response = httpx.post(f"{shared}{path}", json={"url": url}, headers={"X-API-Key": KEY})
        assert response.status_code == 400, (path, response.text)
        assert "not a valid URL" in response.json()["detail"]
