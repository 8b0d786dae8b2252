"""Crawling a fake OpenGameArt on a real local HTTP server, end to end through the CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fake_site import FILES, FakeSite, png

CRAWL = ["--allow-private", "--rate", "1000", "--retry-wait", "0.05", "--quiet"]


@pytest.fixture
def site(tmp_path):
    fake = FakeSite(tmp_path).build().start()
    yield fake
    fake.stop()


def crawl_args(site: FakeSite) -> list[str]:
    return ["crawl", "opengameart", "--base-url", site.base, *CRAWL]


def places(run_cli) -> dict[str, dict]:
    code, out, _ = run_cli("export", "--format", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    named = {}
    for row in rows:
        name = row["source"].rsplit("/", 1)[1]
        named[f"{name}!{row['member']}" if row["member"] else name] = row
    return named


EXPECTED_PAGE = {  # image -> (content page slug, title, author, licence)
    "hero sprite.png": ("hero-sprites", "Hero Sprites", "Ann Artist", "CC0"),
    "hero-walk.zip!walk/frame1.png": ("hero-sprites", "Hero Sprites", "Ann Artist", "CC0"),
    "hero-walk.zip!walk/frame2.png": ("hero-sprites", "Hero Sprites", "Ann Artist", "CC0"),
    "hero-walk.zip!extra.zip!bonus/gem.png": ("hero-sprites", "Hero Sprites", "Ann Artist", "CC0"),
    "dungeon_tiles.rar!floor.png": ("dungeon-tiles", "Dungeon Tiles", "Bob", "CC-BY 3.0 / GPL 2.0"),
    "dungeon_tiles.rar!wall.png": ("dungeon-tiles", "Dungeon Tiles", "Bob", "CC-BY 3.0 / GPL 2.0"),
    "ünïcode tiles.png": ("dungeon-tiles", "Dungeon Tiles", "Bob", "CC-BY 3.0 / GPL 2.0"),
    "100% done.png": ("dungeon-tiles", "Dungeon Tiles", "Bob", "CC-BY 3.0 / GPL 2.0"),
    "monsters.7z!orc.png": ("monsters", "Monster Pack", "Cleo", "OGA-BY 3.0"),
    "monsters.7z!slime.png": ("monsters", "Monster Pack", "Cleo", "OGA-BY 3.0"),
    "slow.png": ("monsters", "Monster Pack", "Cleo", "OGA-BY 3.0"),
    "flaky.png": ("flaky-icons", "Flaky Icons", "Dan", "CC-BY-SA 4.0"),
}


def test_a_crawl_indexes_every_image_with_its_page_metadata(run_cli, site, library_path):
    code, _, err = run_cli(*crawl_args(site))
    assert code == 0, err
    found = places(run_cli)
    assert set(found) == set(EXPECTED_PAGE)
    for name, (slug, title, author, licence) in EXPECTED_PAGE.items():
        row = found[name]
        assert row["status"] == "indexed"
        assert row["page_url"] == f"{site.base}/content/{slug}"
        assert (row["title"], row["author"], row["licence"]) == (title, author, licence)
    # sources are stored decoded, once: a space, unicode and a literal percent sign
    assert found["100% done.png"]["source"] == f"{site.base}{FILES}100% done.png"
    assert found["ünïcode tiles.png"]["source"] == f"{site.base}{FILES}ünïcode tiles.png"
    assert found["hero sprite.png"]["tags"] == ["hero", "sprite"]

    # the download cache has readable names, never double-encoded
    cache = (
        library_path / "downloads" / f"127.0.0.1_{site.server.server_port}" / "sites/default/files"
    )
    assert (cache / "100% done.png").read_bytes() == site.files["100% done.png"]
    assert (cache / "hero sprite.png").exists() and (cache / "ünïcode tiles.png").exists()

    # robots.txt: the disallowed content page was never fetched
    assert site.requests["/content/hidden-art"] == 0
    # the 500 was retried (1 + 3 retries), the flaky 503 + Retry-After succeeded on retry
    assert site.requests[FILES + "error.png"] == 4
    assert site.requests[FILES + "flaky.png"] == 2

    # search shows where an image was found: page, title, author and licence
    query = site.tmp / "query.png"
    query.write_bytes(png(site.images["dungeon_tiles.rar!wall.png"]))
    code, out, _ = run_cli("search", "--json", "-k", "1", query)
    top = json.loads(out)["results"][0]
    assert top["member"] == "wall.png" and top["source"].endswith("dungeon_tiles.rar")
    assert top["page_url"] == f"{site.base}/content/dungeon-tiles"
    assert (top["title"], top["author"], top["licence"]) == (
        "Dungeon Tiles",
        "Bob",
        "CC-BY 3.0 / GPL 2.0",
    )


def test_a_crawl_reports_what_failed(run_cli, site):
    code, _, err = run_cli("crawl", "opengameart", "--base-url", site.base, *CRAWL[:-1])
    assert code == 0
    assert "HTTP 404" in err and "broken-link.png" in err
    assert "HTTP 500" in err and "after 4 attempts" in err
    assert "theme.ogg" in err and "not an image" in err


def test_a_second_crawl_fetches_nothing_new(run_cli, site):
    run_cli(*crawl_args(site))
    site.requests.clear()
    code, _, err = run_cli(*crawl_args(site))
    assert code == 0
    fetched = {path for path, n in site.requests.items() if n}
    # only the first listing page is read again (it lists nothing new, so paging stops);
    # failed files get another try, everything else comes from the catalog and the cache
    assert fetched <= {
        "/robots.txt",
        "/art-search-advanced",
        FILES + "error.png",
        FILES + "broken-link.png",
    }
    assert not any(p.startswith("/content/") for p in fetched)


def test_new_content_is_found_by_the_next_crawl(run_cli, site):
    run_cli(*crawl_args(site))
    from .fake_site import Content

    site.files["new.png"] = png(5000)
    site.contents.insert(0, Content("new-art", "New Art", "Fay", ["CC0"], [], ["new.png"]))
    site.requests.clear()
    code, _, _ = run_cli(*crawl_args(site))
    assert code == 0
    assert site.requests["/content/new-art"] == 1 and site.requests[FILES + "new.png"] == 1
    assert site.requests["/content/hero-sprites"] == 0
    assert places(run_cli)["new.png"]["author"] == "Fay"


def test_an_interrupted_crawl_resumes_without_fetching_again(site, tmp_path):
    library = tmp_path / "lib"
    site.delay = 0.3  # slow files, so that the crawl can be killed half-way
    args = [
        sys.executable,
        "-m",
        "lookalike",
        "-L",
        str(library),
        *crawl_args(site),
        "--concurrency",
        "1",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(f"file:{library / 'catalog.sqlite3'}?mode=ro", uri=True)
            done = conn.execute("SELECT COUNT(*) FROM downloads WHERE status = 'done'").fetchone()[
                0
            ]
            conn.close()
        except sqlite3.OperationalError:
            done = 0
        if done >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = Counter_of(site)
    assert 2 <= sum(n for p, n in before.items() if p.startswith(FILES)) < 12

    site.delay = 0.0
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    retried = {FILES + name for name in ("error.png", "flaky.png", "broken-link.png")}
    for path, n in site.requests.items():
        if path.startswith(("/content/", FILES)) and path not in retried:
            assert n == 1, (path, n)  # nothing that succeeded was fetched twice, across runs
    assert set(places_of(library)) == set(EXPECTED_PAGE)


def Counter_of(site):
    return dict(site.requests)


def places_of(library: Path) -> list[str]:
    conn = sqlite3.connect(library / "catalog.sqlite3")
    rows = conn.execute("SELECT source, member FROM places").fetchall()
    conn.close()
    return [s.rsplit("/", 1)[1] + (f"!{m}" if m else "") for s, m in rows]


def test_a_generic_site_crawl(run_cli, tmp_path, site):
    """`crawl site`: follow links by pattern, download by pattern, metadata from the page."""
    import http.server
    import threading
    from functools import partial

    root = tmp_path / "www"
    (root / "gallery").mkdir(parents=True)
    (root / "gallery" / "a.png").write_bytes(png(7001))
    (root / "gallery" / "b.png").write_bytes(png(7002))
    (root / "index.html").write_text(
        '<html><head><title>Home</title></head><body><a href="gallery/page1.html">gallery</a>'
        '<a href="other.html">other</a></body></html>'
    )
    (root / "other.html").write_text('<a href="gallery/b.png">not followed</a>')
    (root / "gallery" / "page1.html").write_text(
        '<html><head><meta property="og:title" content="Pixel Gallery">'
        '<meta name="author" content="Gil"></head><body>'
        '<a rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">CC0 1.0</a>'
        '<img src="a.png"><a href="b.png">b</a></body></html>'
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        code, _, err = run_cli("crawl", "site", f"{base}/index.html", "--follow", "gallery/.*html$",
                               "--files", r"\.png$", *CRAWL)  # fmt: skip
        assert code == 0, err
    finally:
        server.shutdown()
    found = places(run_cli)
    assert set(found) == {"a.png", "b.png"}
    assert all(
        (r["title"], r["author"], r["licence"], r["page_url"])
        == ("Pixel Gallery", "Gil", "CC0 1.0", f"{base}/gallery/page1.html")
        for r in found.values()
    )


def test_crawling_a_loopback_site_needs_allow_private(run_cli, site):
    code, _, err = run_cli("crawl", "opengameart", "--base-url", site.base, "--rate", "1000")
    assert code == 0
    assert "non-public address" in err and "--allow-private" in err
    assert sum(site.requests.values()) == 0
