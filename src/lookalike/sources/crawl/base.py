"""What a site adapter tells the crawler about a page. A new site is one module with one
`SiteAdapter` subclass: where to start, and how to read its listing and content pages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from bs4 import BeautifulSoup


@dataclass(frozen=True)
class PageInfo:
    """What a content page says about the files it links to."""

    title: str | None = None
    author: str | None = None
    licence: str | None = None  # several are joined with " / "
    tags: tuple[str, ...] = ()
    date: str | None = None

    def as_data(self) -> dict:
        return {
            "title": self.title,
            "author": self.author,
            "licence": self.licence,
            "tags": list(self.tags),
            "date": self.date,
        }


@dataclass
class Parsed:
    listings: list[str] = field(default_factory=list)  # more listing pages (next, page 2...)
    pages: list[str] = field(default_factory=list)  # content pages to read
    files: list[str] = field(default_factory=list)  # downloadable files on this page
    info: PageInfo | None = None  # for content pages


class SiteAdapter(ABC):
    #: Names this crawl in the catalog's queues; the same id resumes the same crawl.
    crawl_id: str

    @abstractmethod
    def start_urls(self) -> list[str]:
        """The first listing pages (read again on every crawl, to find what is new)."""

    @abstractmethod
    def parse_listing(self, url: str, html: str) -> Parsed: ...

    @abstractmethod
    def parse_page(self, url: str, html: str) -> Parsed: ...


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def text_of(node) -> str | None:
    if node is None:
        return None
    value = " ".join(node.get_text(" ", strip=True).split())
    return value or None
