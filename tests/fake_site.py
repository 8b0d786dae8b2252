"""A small fake OpenGameArt served by a real HTTP server on 127.0.0.1, for crawl tests.

Modelled on OpenGameArt's Drupal pages (the `field-name-...` blocks, the search listing with
its pager, files under /sites/default/files/). It serves images, zip / rar / 7z archives (one
nested), a broken link, a 500, a slow response, a flaky 503 with Retry-After, a non-image file,
and file names with spaces, unicode and a percent sign. Every request is logged.
"""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .archive_makers import make_7z, make_rar, make_zip
from .conftest import make_picture

FILES = "/sites/default/files/"


def png(seed: int, size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Content:
    slug: str
    title: str
    author: str
    licences: list[str]
    tags: list[str]
    files: list[str]  # names under /sites/default/files/ (decoded)


@dataclass
class FakeSite:
    tmp: Path
    contents: list[Content] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # decoded path -> body
    images: dict[str, int] = field(default_factory=dict)  # "file" or "file!member" -> seed
    requests: Counter = field(default_factory=Counter)  # decoded path -> times requested
    delay: float = 0.0  # seconds added to every file response
    flaky_left: int = 1
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def build(self) -> FakeSite:
        seed = iter(range(900, 1000))

        def image(name: str) -> bytes:
            self.images[name] = s = next(seed)
            return png(s)

        self.files = {
            "hero sprite.png": image("hero sprite.png"),
            "ünïcode tiles.png": image("ünïcode tiles.png"),
            "100% done.png": image("100% done.png"),
            "slow.png": image("slow.png"),
            "flaky.png": image("flaky.png"),
            "theme.ogg": b"OggS\x00\x02" + b"\x00" * 200,
            "error.png": b"",  # always answers 500
        }
        extra = make_zip({"bonus/gem.png": image("hero-walk.zip!extra.zip!bonus/gem.png")})
        self.files["hero-walk.zip"] = make_zip(
            {
                "walk/frame1.png": image("hero-walk.zip!walk/frame1.png"),
                "walk/frame2.png": image("hero-walk.zip!walk/frame2.png"),
                "extra.zip": extra,
                "readme.txt": b"CC0, have fun",
            }
        )
        self.files["dungeon_tiles.rar"] = make_rar(
            {
                "floor.png": image("dungeon_tiles.rar!floor.png"),
                "wall.png": image("dungeon_tiles.rar!wall.png"),
            }
        )
        self.files["monsters.7z"] = make_7z(
            self.tmp / "monsters.7z",
            {"orc.png": image("monsters.7z!orc.png"), "slime.png": image("monsters.7z!slime.png")},
        )
        self.contents = [
            Content("hero-sprites", "Hero Sprites", "Ann Artist", ["CC0"], ["hero", "sprite"],
                    ["hero sprite.png", "hero-walk.zip", "broken-link.png"]),
            Content("dungeon-tiles", "Dungeon Tiles", "Bob", ["CC-BY 3.0", "GPL 2.0"], ["tiles"],
                    ["dungeon_tiles.rar", "ünïcode tiles.png", "100% done.png"]),
            Content("monsters", "Monster Pack", "Cleo", ["OGA-BY 3.0"], ["monster"],
                    ["monsters.7z", "error.png", "slow.png", "theme.ogg"]),
            Content("hidden-art", "Hidden", "Eve", ["CC0"], [], ["hero sprite.png"]),
            Content("flaky-icons", "Flaky Icons", "Dan", ["CC-BY-SA 4.0"], ["icons"],
                    ["flaky.png"]),
        ]  # fmt: skip
        return self

    # -- pages ----------------------------------------------------------------------------------

    def listing(self, page: int) -> str:
        shown = self.contents[:4] if page == 0 else self.contents[4:]
        rows = "".join(
            f'<div class="views-row"><div class="views-field views-field-title">'
            f'<span class="field-content"><a href="/content/{c.slug}">{escape(c.title)}</a>'
            f"</span></div></div>"
            for c in shown
        )
        pager = (
            '<ul class="pager"><li class="pager-next"><a href="/art-search-advanced?keys=&amp;'
            'field_art_type_tid%5B%5D=9&amp;sort_by=created&amp;sort_order=DESC&amp;page=1">'
            "next ›</a></li></ul>"
            if page == 0
            else ""
        )
        return f"<html><body><div class='view-content'>{rows}</div>{pager}</body></html>"

    def content_page(self, content: Content) -> str:
        def field(name: str, inner: str) -> str:
            return (
                f'<div class="field field-name-{name}"><div class="field-items">{inner}</div></div>'
            )

        licences = "".join(
            f'<div class="field-item"><a href="https://licences.test/{i}">'
            f'<div class="license-icon"></div><div class="license-name">{escape(x)}</div></a></div>'
            for i, x in enumerate(content.licences)
        )
        tags = "".join(
            f'<div class="field-item"><a href="/art-search-advanced?field_art_tags_tid={t}">{t}</a></div>'
            for t in content.tags
        )
        files = "".join(
            f'<div class="field-item"><span class="file"><a href="{self.base}{FILES}{quote(f)}">'
            f"{escape(f)}</a></span></div>"
            for f in content.files
        )
        return (
            f"<html><head><title>{escape(content.title)} | OpenGameArt.org</title></head><body>"
            + field("title", f'<div class="field-item"><h2>{escape(content.title)}</h2></div>')
            + field(
                "author-submitter",
                f'<span class="username"><a href="/users/x">{escape(content.author)}</a></span>',
            )
            + field("post-date", '<div class="field-item">01/02/2024 - 10:00</div>')
            + field("field-art-licenses", licences)
            + field("field-art-tags", tags)
            + field("field-art-files", files)
            + "</body></html>"
        )

    # -- serving --------------------------------------------------------------------------------

    def start(self) -> FakeSite:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                site.requests[path] += 1
                if path == "/robots.txt":
                    return self.reply(
                        200, b"User-agent: *\nDisallow: /content/hidden-art\n", "text/plain"
                    )
                if path == "/art-search-advanced":
                    page = 1 if "page=1" in parts.query else 0
                    return self.reply(200, site.listing(page).encode(), "text/html; charset=utf-8")
                if path.startswith("/content/"):
                    for content in site.contents:
                        if path == f"/content/{content.slug}":
                            return self.reply(200, site.content_page(content).encode(), "text/html")
                if path.startswith(FILES):
                    return self.file(path[len(FILES) :])
                return self.reply(404, b"not found", "text/plain")

            def file(self, name: str):
                time.sleep(site.delay)
                if name == "error.png":
                    return self.reply(500, b"boom", "text/plain")
                if name == "slow.png":
                    time.sleep(1.0)
                if name == "flaky.png" and site.flaky_left > 0:
                    site.flaky_left -= 1
                    return self.reply(503, b"busy", "text/plain", {"Retry-After": "0"})
                if name not in site.files:
                    return self.reply(404, b"not found", "text/plain")
                return self.reply(200, site.files[name], "application/octet-stream")

            def reply(self, status, body, ctype, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
