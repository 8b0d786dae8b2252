"""Any site: start at a URL, follow links matching one pattern, download links matching another.

Page metadata comes from what most sites have: the `og:title` or `<title>`, a
`<meta name="author">`, and a licence link marked `rel="license"`.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from .base import PageInfo, Parsed, SiteAdapter, soup, text_of


class GenericSite(SiteAdapter):
    def __init__(self, start_url: str, *, follow: str, files: str, other_hosts: bool = False):
        self.start_url = start_url
        self.follow = re.compile(follow)
        self.files = re.compile(files)
        self.other_hosts = other_hosts
        self.crawl_id = f"site {start_url} follow={follow} files={files}"

    def start_urls(self) -> list[str]:
        return [self.start_url]

    def parse_listing(self, url: str, html: str) -> Parsed:
        return self.parse_page(url, html)

    def parse_page(self, url: str, html: str) -> Parsed:
        page = soup(html)
        pages, files = [], []
        host = urlsplit(url).netloc
        candidates = [a.get("href") for a in page.select("a[href]")]
        candidates += [img.get("src") for img in page.select("img[src]")]
        for href in candidates:
            target = urljoin(url, href).split("#", 1)[0]
            if not target.startswith(("http://", "https://")):
                continue
            if not self.other_hosts and urlsplit(target).netloc != host:
                continue
            if self.files.search(target):
                if target not in files:
                    files.append(target)
            elif self.follow.search(target) and target not in pages:
                pages.append(target)
        og_title = page.select_one('meta[property="og:title"]')
        author = page.select_one('meta[name="author"]')
        licence = page.select_one('a[rel~="license"], link[rel~="license"]')
        info = PageInfo(
            title=(og_title.get("content") if og_title else None) or text_of(page.title),
            author=author.get("content") if author else None,
            licence=(text_of(licence) or licence.get("href")) if licence else None,
        )
        return Parsed(pages=pages, files=files, info=info)
