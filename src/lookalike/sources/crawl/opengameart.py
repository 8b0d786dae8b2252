"""OpenGameArt.org: search listings -> content pages -> files under /sites/default/files/.

OpenGameArt is a Drupal site. Its pages mark each field with a `field-name-...` class:
`field-name-title`, `field-name-author-submitter`, `field-name-post-date`,
`field-name-field-art-licenses` (each licence in a `license-name`), `field-name-field-art-tags`
and `field-name-field-art-files` (the download links). Listings come from
`/art-search-advanced` with Drupal's pager (`li.pager-next`).
"""

from __future__ import annotations

from urllib.parse import quote_plus, urljoin, urlsplit

from .base import PageInfo, Parsed, SiteAdapter, soup, text_of

DEFAULT_BASE_URL = "https://opengameart.org"
ART_TYPES = {  # OpenGameArt's taxonomy ids for field_art_type_tid
    "2d": 9,
    "3d": 10,
    "concept": 7273,
    "texture": 14,
    "music": 12,
    "sound": 13,
    "document": 11,
}


class OpenGameArt(SiteAdapter):
    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, query: str = "", art_type: str = "2d"):
        if art_type not in ART_TYPES:
            raise ValueError(f"unknown art type {art_type!r}; one of {', '.join(ART_TYPES)}")
        self.base_url = base_url.rstrip("/")
        self.query = query
        self.art_type = art_type
        self.crawl_id = f"opengameart {self.base_url} type={art_type} query={query}"

    def start_urls(self) -> list[str]:
        # Newest first, so that a re-crawl finds what is new on its first listing pages.
        return [
            f"{self.base_url}/art-search-advanced?keys={quote_plus(self.query)}"
            f"&field_art_type_tid%5B%5D={ART_TYPES[self.art_type]}"
            "&sort_by=created&sort_order=DESC"
        ]

    def parse_listing(self, url: str, html: str) -> Parsed:
        page = soup(html)
        links = page.select(".views-field-title a[href]") or page.select('a[href*="/content/"]')
        contents = []
        for link in links:
            target = urljoin(url, link["href"])
            if "/content/" in urlsplit(target).path and target not in contents:
                contents.append(target)
        listings = [urljoin(url, a["href"]) for a in page.select("li.pager-next a[href]")]
        return Parsed(listings=listings, pages=contents)

    def parse_page(self, url: str, html: str) -> Parsed:
        page = soup(html)
        title = text_of(page.select_one(".field-name-title h2, .field-name-title")) or _title_tag(
            page
        )
        author = text_of(
            page.select_one(".field-name-author-submitter a[href*='/users/'], .username")
        )
        licences = [text_of(n) for n in page.select(".field-name-field-art-licenses .license-name")]
        if not licences:
            licences = [text_of(a) for a in page.select(".field-name-field-art-licenses a")]
        tags = [text_of(a) for a in page.select(".field-name-field-art-tags a")]
        date = text_of(page.select_one(".field-name-post-date .field-item"))
        files = []
        for link in page.select(".field-name-field-art-files a[href]"):
            target = urljoin(url, link["href"])
            if "/sites/default/files/" in urlsplit(target).path and target not in files:
                files.append(target)
        info = PageInfo(
            title=title,
            author=author,
            licence=" / ".join(dict.fromkeys(x for x in licences if x)) or None,
            tags=tuple(dict.fromkeys(t for t in tags if t)),
            date=date,
        )
        return Parsed(files=files, info=info)


def _title_tag(page) -> str | None:
    title = text_of(page.title)
    if title and " | " in title:
        title = title.rsplit(" | ", 1)[0]
    return title
