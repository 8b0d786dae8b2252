"""Fetching: the address guard, redirects, size caps, retries, the cache's names, and
`lookalike index URL` / `--urls FILE` against a real local server."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import PurePosixPath

import pytest

from lookalike.catalog import display_url
from lookalike.sources.http import BlockedAddressError, Fetcher, FetchError, FetchPolicy
from lookalike.sources.urls import cache_name

from .fake_site import FILES, FakeSite, png


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost:8080/x.png",
        "http://10.1.2.3/x.png",
        "http://192.168.0.10/x.png",
        "http://172.16.5.5/x.png",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/x.png",
        "http://[fe80::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0.0.0.0/x.png",
        "http://100.64.0.1/x.png",  # carrier-grade NAT
    ],
)
def test_non_public_addresses_are_refused(url):
    with Fetcher(FetchPolicy()) as fetcher, pytest.raises(BlockedAddressError, match="non-public"):
        fetcher.get(url)


def test_only_http_urls_are_fetched():
    with Fetcher(FetchPolicy(allow_private=True)) as fetcher:
        for url in ("file:///etc/passwd", "ftp://example.org/x", "gopher://x/"):
            with pytest.raises(FetchError, match="not an http"):
                fetcher.get(url)


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers by path: /redirect-to?<url>, /big, /retry-later, /rate-limited, /image."""

    hits: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path, _, query = self.path.partition("?")
        Scripted.hits[path] = Scripted.hits.get(path, 0) + 1
        if path == "/redirect-to":
            self.send_response(302)
            self.send_header("Location", query)
            self.end_headers()
        elif path == "/big":  # no Content-Length: the cap must hold while streaming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 300_000)
        elif path == "/retry-later":
            self.send_response(429)
            self.send_header("Retry-After", "3600")
            self.end_headers()
        elif path == "/image":
            body = png(1)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def scripted():
    Scripted.hits = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_every_redirect_hop_is_checked(scripted):
    class OnlyThisHost(Fetcher):
        """127.0.0.1 stands in for a public host; anything else is 'private'."""

        def check_address(self, url):
            if "127.0.0.1" not in url:
                raise BlockedAddressError(f"{url}: non-public address")

    with OnlyThisHost(FetchPolicy(allow_private=True)) as fetcher:
        assert fetcher.get(f"{scripted}/redirect-to?{scripted}/image").body == png(1)
        with pytest.raises(BlockedAddressError):
            fetcher.get(f"{scripted}/redirect-to?http://localhost:1/secret")


def test_downloads_are_capped_even_without_content_length(scripted, tmp_path):
    with Fetcher(FetchPolicy(allow_private=True, max_bytes=100_000)) as fetcher:
        with pytest.raises(FetchError, match="larger than the 100,000-byte limit"):
            fetcher.download(f"{scripted}/big", tmp_path / "big")
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_a_long_retry_after_fails_instead_of_waiting(scripted):
    with Fetcher(FetchPolicy(allow_private=True, max_retry_after=5)) as fetcher:
        with pytest.raises(FetchError, match="HTTP 429.*retry after 3600 s"):
            fetcher.get(f"{scripted}/retry-later")
    assert Scripted.hits["/retry-later"] == 1


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://oga.org/files/My%20Sprite.png", "oga.org/files/My Sprite.png"),
        ("https://oga.org/files/100%25%20done.png", "oga.org/files/100% done.png"),
        ("https://oga.org/files/%C3%BCn%C3%AFcode.png", "oga.org/files/ünïcode.png"),
        ("https://oga.org/a/../../etc/passwd", "oga.org/a/etc/passwd"),
        ("https://oga.org/files/x%2F..%2F..%2Fy.png", "oga.org/files/x_.._.._y.png"),
        ("http://oga.org:8080/", "oga.org_8080/index"),
    ],
)
def test_cache_names_are_readable_and_never_double_encoded(url, expected):
    assert cache_name(url) == PurePosixPath(expected)


def test_cache_names_keep_queries_apart_and_long_names_bounded():
    a, b = cache_name("https://h/get.php?id=1"), cache_name("https://h/get.php?id=2")
    assert a != b and a.name.startswith("get__") and a.suffix == ".php"
    long = cache_name("https://h/" + "n" * 400 + ".png")
    assert len(long.name.encode()) <= 150 and long.suffix == ".png"


def test_display_urls_are_decoded_once():
    assert display_url("https://h/f/100%25%20done.png") == "https://h/f/100% done.png"
    assert display_url("https://h/a%2520b.png") == "https://h/a%20b.png"


@pytest.fixture
def site(tmp_path):
    fake = FakeSite(tmp_path).build().start()
    yield fake
    fake.stop()


def test_index_urls_and_url_lists(run_cli, site, tmp_path):
    url_list = tmp_path / "urls.txt"
    url_list.write_text(
        f"# art to index\n{site.base}{FILES}monsters.7z\n\n{site.base}{FILES}theme.ogg\n"
    )
    code, _, err = run_cli(
        "index", "--allow-private", "--urls", url_list, f"{site.base}{FILES}hero%20sprite.png"
    )
    assert code == 0, err
    assert "3 added" in err and "not an image" in err
    code, out, _ = run_cli("export", "--format", "jsonl")
    sources = sorted((json.loads(x)["source"], json.loads(x)["member"]) for x in out.splitlines())
    assert sources == [
        (f"{site.base}{FILES}hero sprite.png", ""),
        (f"{site.base}{FILES}monsters.7z", "orc.png"),
        (f"{site.base}{FILES}monsters.7z", "slime.png"),
    ]
    site.requests.clear()
    code, _, err = run_cli("index", "--allow-private", "--urls", url_list)
    assert code == 0 and site.requests[FILES + "monsters.7z"] == 0  # served from the cache


def test_index_refuses_loopback_urls_without_allow_private(run_cli, site):
    code, _, err = run_cli("index", f"{site.base}{FILES}hero%20sprite.png")
    assert code == 0 and "1 failed" in err and "non-public address" in err
    assert sum(site.requests.values()) == 0


def test_index_rejects_what_is_neither_a_path_nor_a_url(run_cli):
    code, _, err = run_cli("index", "/no/such/folder")
    assert code == 2 and "no such file or folder" in err
