"""Network limits of the fetcher, against a real local HTTP server: size caps (declared and
streamed), timeouts, redirect loops, and downloads judged by their bytes, not their
Content-Type or name."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

from lookalike.server import ServerSettings, create_app
from lookalike.sources import Fetcher, FetchError, FetchPolicy

from .fake_site import png


def zip_of_png() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inner/tile.png", png(31))
    return buf.getvalue()


HTML = b"<!doctype html><html><body>Not found, but with a 200</body></html>"

# path -> (status, headers, body, seconds to wait before the body)
ROUTES = {
    "/declares-huge": (200, {"Content-Length": str(100 * 2**20)}, b"x" * 1000, 0),
    "/streams-big": (200, {}, b"x" * 300_000, 0),  # no Content-Length: counted as it comes
    "/stalls": (200, {"Content-Length": "10"}, b"0123456789", 5),  # headers, then nothing
    "/loop": (302, {"Location": "/loop"}, b"", 0),
    "/art/hero.png": (200, {"Content-Type": "image/png"}, HTML, 0),  # lies about its type
    "/download.cgi": (200, {"Content-Type": "text/plain"}, png(30), 0),  # a PNG all the same
    "/pack.bin": (200, {"Content-Type": "application/octet-stream"}, zip_of_png(), 0),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        status, headers, body, wait = ROUTES.get(self.path, (404, {}, b"", 0))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and status == 200:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.flush()
            time.sleep(wait)
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def fetcher(**policy) -> Fetcher:
    return Fetcher(FetchPolicy(allow_private=True, retries=0, **policy))


def test_a_declared_size_over_the_cap_is_refused_before_reading(site):
    with fetcher(max_bytes=100_000) as f, pytest.raises(FetchError) as caught:
        f.get(f"{site}/declares-huge")
    assert "104,857,600 bytes, over the 100,000 limit" in str(caught.value)


def test_a_body_without_a_length_is_capped_in_memory_too(site):
    with fetcher(max_bytes=100_000) as f, pytest.raises(FetchError, match="larger than the"):
        f.get(f"{site}/streams-big")


def test_a_server_that_stalls_times_out(site):
    started = time.monotonic()
    with fetcher(timeout=0.5) as f, pytest.raises(FetchError, match="ReadTimeout"):
        f.get(f"{site}/stalls")
    assert time.monotonic() - started < 4  # the server would have taken 5 s


def test_redirect_loops_end(site):
    with fetcher() as f, pytest.raises(FetchError, match="more than 5 redirects"):
        f.get(f"{site}/loop")


def test_downloads_are_judged_by_their_bytes(run_cli, site):
    """An HTML page served as image/png under a .png name is refused; a PNG served as
    text/plain from a .cgi, and a zip served as octet-stream from a .bin, are indexed."""
    urls = [f"{site}/art/hero.png", f"{site}/download.cgi", f"{site}/pack.bin"]
    code, _, err = run_cli("index", "--allow-private", *urls)
    assert code == 0, err
    assert "2 added" in err and "1 failed" in err
    assert f"{site}/art/hero.png: not an image or an archive (by its content)" in err
    code, out, _ = run_cli("export", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    by_source = {(r["source"], r["member"]): r for r in rows}
    assert set(by_source) == {(f"{site}/download.cgi", ""), (f"{site}/pack.bin", "inner/tile.png")}
    assert by_source[(f"{site}/download.cgi", "")]["format"] == "PNG"
    assert by_source[(f"{site}/pack.bin", "inner/tile.png")]["format"] == "PNG"


def test_the_api_refuses_a_url_over_its_cap(run_cli, picture_folder, library_path, site):
    run_cli("index", picture_folder)
    app = create_app(library_path, ServerSettings(allow_private_urls=True))
    with TestClient(app) as client:
        response = client.post("/api/v1/search", json={"url": f"{site}/declares-huge"})
        assert response.status_code == 400
        assert "over the 67,108,864 limit" in response.json()["detail"]
        page = client.post("/api/v1/search", json={"url": f"{site}/art/hero.png"})
        assert page.status_code == 400 and "not an image" in page.json()["detail"]
