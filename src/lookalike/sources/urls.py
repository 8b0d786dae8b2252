"""Images and archives on the web: a download cache keyed by URL, and the `UrlSource` that
feeds downloaded files to the indexing pipeline.

Cached files live under `<library>/downloads/<host>/<path>`, named as a person would read the
URL: percent-escapes decoded exactly once (`My%20Sprite.png` -> `My Sprite.png`,
`100%25.png` -> `100%.png`), then made safe for the file system (no `..`, no control
characters, bounded length). The downloads table maps each URL to its file, so a URL is
fetched once, and two URLs whose readable names collide get distinct files.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from lookalike.catalog import Catalog, DownloadLog, Place, display_url

from .base import ArchiveFile, Source, SourceItem, SourceProblem
from .folder import FileItem, file_kind
from .http import Fetcher, FetchError

MAX_NAME_BYTES = 150


def cache_name(url: str) -> PurePosixPath:
    """The readable relative path a URL is cached under (before collision handling)."""
    parts = urlsplit(url)
    host = safe_filename(parts.hostname or "unknown-host")
    if parts.port:
        host += f"_{parts.port}"
    components = [safe_filename(unquote(c)) for c in parts.path.split("/") if c]
    components = [c for c in components if c] or ["index"]
    if parts.query:
        digest = hashlib.sha256(parts.query.encode()).hexdigest()[:8]
        stem, dot, ext = components[-1].rpartition(".")
        components[-1] = f"{stem}__{digest}.{ext}" if dot else f"{ext}__{digest}"
    return PurePosixPath(host, *components)


def safe_filename(text: str) -> str:
    """One path component, safe on any file system: printable, no separators, no `.`/`..`,
    at most MAX_NAME_BYTES (a hash keeps long names apart)."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in text)
    text = text.strip(" .")  # no "", ".", ".." and no hidden-file surprises
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        digest = hashlib.sha256(encoded).hexdigest()[:8]
        stem, dot, ext = text.rpartition(".")
        keep = (stem if dot and len(ext) <= 10 else text).encode()[: MAX_NAME_BYTES - 20]
        text = (
            keep.decode("utf-8", errors="ignore")
            + f"~{digest}"
            + (f".{ext}" if dot and len(ext) <= 10 else "")
        )
    return text


@dataclass(frozen=True)
class Download:
    url: str
    path: Path | None  # the cached body; None when the download failed
    error: str | None = None
    fetched: bool = False  # False: served from the cache


class Downloader:
    """Fetch URLs into the cache with bounded concurrency; catalog writes stay on this thread."""

    def __init__(self, catalog: Catalog, fetcher: Fetcher, root: Path, *, concurrency: int = 4):
        self.log = DownloadLog(catalog)
        self.catalog = catalog
        self.fetcher = fetcher
        self.root = Path(root)
        self.concurrency = concurrency

    def fetch_all(
        self,
        urls: Iterable[str],
        *,
        retry_failed: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Download]:
        """Each URL's download, cached ones first-come; failed ones are retried by default."""
        pending: dict[Future, tuple[str, Path]] = {}
        claimed: set[Path] = set()
        urls = iter(urls)
        exhausted = False
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="download") as pool:
            while True:
                while not exhausted and len(pending) < self.concurrency * 2 and not should_stop():
                    url = next(urls, None)
                    if url is None:
                        exhausted = True
                        break
                    row = self.log.get(url)
                    if (
                        row
                        and row.status == "done"
                        and row.path
                        and (self.root / row.path).exists()
                    ):
                        yield Download(url, self.root / row.path)
                        continue
                    if row and row.status == "failed" and not retry_failed:
                        yield Download(url, None, row.error)
                        continue
                    target = self._target(url, row.path if row else None, claimed)
                    claimed.add(target)
                    pending[pool.submit(self.fetcher.download, url, target)] = (url, target)
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    url, target = pending.pop(future)
                    claimed.discard(target)
                    yield self._record(url, target, future)

    def _record(self, url: str, target: Path, future: Future) -> Download:
        # One statement each: it autocommits, or joins the transaction the indexer has open.
        relative = str(target.relative_to(self.root))
        try:
            result = future.result()
        except FetchError as exc:
            self.log.record(url, path=None, status="failed", error=str(exc))
            return Download(url, None, str(exc), fetched=True)
        self.log.record(
            url,
            path=relative,
            status="done",
            http_status=result.status,
            content_type=result.content_type,
            size=result.size,
            attempts=result.attempts,
        )
        return Download(url, target, fetched=True)

    def _target(self, url: str, previous: str | None, claimed: set[Path]) -> Path:
        if previous:
            return self.root / previous
        name = cache_name(url)
        candidate = self.root / name
        owner = self.log.path_owner(str(name))
        if (owner not in (None, url)) or candidate in claimed:
            digest = hashlib.sha256(url.encode()).hexdigest()[:8]
            candidate = candidate.with_name(f"{candidate.stem}~{digest}{candidate.suffix}")
        return candidate


@dataclass(frozen=True)
class UrlTask:
    """A URL to index, with what is known about it (from a crawled page, say)."""

    url: str
    page_url: str | None = None
    title: str | None = None
    author: str | None = None
    licence: str | None = None
    tags: tuple[str, ...] = ()

    def place(self) -> Place:
        return Place(
            source=display_url(self.url),
            page_url=display_url(self.page_url) if self.page_url else None,
            title=self.title,
            author=self.author,
            licence=self.licence,
            tags=self.tags,
        )


class UrlSource(Source):
    """Images and archives at URLs: downloaded (or taken from the cache), then indexed with the
    URL as their place. Anything that is neither an image nor an archive is reported."""

    def __init__(
        self,
        tasks: Iterable[UrlTask | str],
        downloader: Downloader,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ):
        self.tasks = [t if isinstance(t, UrlTask) else UrlTask(t) for t in tasks]
        self.downloader = downloader
        self.should_stop = should_stop

    @property
    def description(self) -> str:
        return f"{len(self.tasks)} URLs"

    def items(self) -> Iterator[SourceItem | SourceProblem]:
        by_url = {t.url: t for t in self.tasks}
        for download in self.downloader.fetch_all(by_url, should_stop=self.should_stop):
            place = by_url[download.url].place()
            if download.path is None:
                yield SourceProblem(place, download.error or "download failed")
                continue
            stat = download.path.stat()
            kind = file_kind(str(download.path), by_content=True)  # a URL's name proves nothing
            common = dict(
                place=place, size=stat.st_size, mtime_ns=stat.st_mtime_ns, path=str(download.path)
            )
            if kind == "image":
                yield FileItem(**common)
            elif kind == "archive":
                yield ArchiveFile(**common)
            else:
                yield SourceProblem(place, "not an image or an archive (by its content)")


def read_url_list(path: Path) -> list[str]:
    """One URL per line; blank lines and lines starting with # are ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
