"""The crawl: listing pages -> content pages -> files -> the indexing pipeline, resumable.

Every step's work is a queue in the catalog (`crawl_queue`): a row per URL, pending / done /
failed with its error and attempt count, and what the step learned (a page's title, author,
licence...). So a crawl that is stopped (Ctrl-C, kill, crash) resumes where it was, and a
second crawl fetches only what is new:

- listing pages are read again on every crawl (that is how new content shows up), newest
  first, and the crawl stops turning pages at the first one that lists nothing new;
- content pages and files are fetched once; failed ones are tried again on later crawls, up
  to MAX_ATTEMPTS;
- downloads land in the library's download cache, and the files are then indexed like any
  other, each image keeping the page URL, title, author and licence of its content page.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from tqdm import tqdm

from lookalike.catalog import CrawlQueue
from lookalike.library import Library
from lookalike.sources import (
    Downloader,
    Fetcher,
    FetchError,
    FetchPolicy,
    Parsed,
    SiteAdapter,
    UrlSource,
    UrlTask,
)

from .interrupts import StopOnInterrupt
from .pipeline import Indexer, IndexReport

MAX_ATTEMPTS = 3


@dataclass
class CrawlReport:
    listings: int = 0  # listing pages read in this crawl
    pages: int = 0  # content pages read
    new_files: int = 0  # file links discovered
    downloaded: int = 0  # files fetched in this crawl
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, error)
    index: IndexReport | None = None
    interrupted: bool = False


class Crawler:
    def __init__(
        self,
        library: Library,
        site: SiteAdapter,
        policy: FetchPolicy,
        *,
        max_listings: int | None = None,
        max_pages: int | None = None,
        concurrency: int = 4,
        progress: bool | None = None,
        index_options: dict | None = None,
    ):
        self.library = library
        self.site = site
        self.policy = policy
        self.max_listings = max_listings  # listing pages read per crawl
        self.max_pages = max_pages  # content pages read per crawl (the rest wait, pending)
        self.concurrency = concurrency
        self.progress = progress
        self.index_options = index_options or {}
        self.queue = CrawlQueue(library.catalog, site.crawl_id)
        self.report = CrawlReport()

    def run(self) -> CrawlReport:
        with StopOnInterrupt() as stop, Fetcher(self.policy) as fetcher:
            self._stop = stop
            self._fetcher = fetcher
            self._read_listings()
            self._read_pages()
            self._download_files()
            if not stop.requested:
                self._index_files()
            self.report.interrupted = stop.requested or bool(
                self.report.index and self.report.index.interrupted
            )
        return self.report

    # -- steps --------------------------------------------------------------------------------

    def _read_listings(self) -> None:
        """Follow the listing pages one after another (each names the next)."""
        for url in self.site.start_urls():
            self.queue.add("listing", url)
            self.queue.reopen_one("listing", url)  # listings change: read them again
        seen: set[str] = set()
        bar = self._bar("listing pages")
        while not self._stop.requested:
            pending = [r.url for r in self.queue.rows("listing", "pending") if r.url not in seen]
            if not pending or (self.max_listings and self.report.listings >= self.max_listings):
                break
            url = pending[0]
            seen.add(url)
            parsed = self._fetch_and_parse(url, "listing", self.site.parse_listing)
            bar.update(1)
            if parsed is None:
                continue
            self.report.listings += 1
            self._queue_files(url, parsed)
            new_pages = [p for p in parsed.pages if self.queue.add("page", p)]
            if new_pages:  # a page of nothing new: the rest was seen by an earlier crawl
                for listing in parsed.listings:
                    self.queue.add("listing", listing)
                    if listing not in seen:
                        self.queue.reopen_one("listing", listing)
        bar.close()

    def _read_pages(self) -> None:
        """Read content pages, several at a time; queue the files each links to."""
        bar = self._bar("content pages")

        def on_page(url: str, parsed: Parsed | None) -> None:
            bar.update(1)
            if parsed is None:
                return
            self.report.pages += 1
            self._queue_files(url, parsed)
            for page in parsed.pages:  # sites whose content pages link to more pages
                self.queue.add("page", page)

        while not self._stop.requested:
            todo = [r.url for r in self._todo("page")]
            if self.max_pages is not None:
                todo = todo[: max(0, self.max_pages - self.report.pages)]
            if not todo:
                break
            bar.total = (bar.total or 0) + len(todo)
            self._in_parallel(todo, self._fetcher.get, "page", on_page)
        bar.close()

    def _queue_files(self, page_url: str, parsed: Parsed) -> None:
        data = {"page_url": page_url, **(parsed.info.as_data() if parsed.info else {})}
        for file_url in parsed.files:
            if self.queue.add("file", file_url, data):
                self.report.new_files += 1

    def _download_files(self) -> None:
        todo = [r.url for r in self._todo("file")]
        if not todo or self._stop.requested:
            return
        downloader = self._downloader()
        bar = self._bar("files", total=len(todo))
        for download in downloader.fetch_all(todo, should_stop=lambda: self._stop.requested):
            bar.update(1)
            if download.error:
                self.queue.finish("file", download.url, error=download.error)
                self.report.failed.append((download.url, download.error))
            else:
                self.queue.finish("file", download.url)
                self.report.downloaded += int(download.fetched)
        bar.close()

    def _index_files(self) -> None:
        """Index every downloaded file of this crawl (unchanged ones are skipped at once)."""
        tasks = []
        for row in self.queue.rows("file", "done"):
            data = row.data
            tasks.append(
                UrlTask(
                    row.url,
                    page_url=data.get("page_url"),
                    title=data.get("title"),
                    author=data.get("author"),
                    licence=data.get("licence"),
                    tags=tuple(data.get("tags") or ()),
                )
            )
        indexer = Indexer(self.library, progress=self.progress, **self.index_options)
        source = UrlSource(tasks, self._downloader(), should_stop=lambda: indexer.stop_requested)
        self.report.index = indexer.run([source])

    # -- helpers ------------------------------------------------------------------------------

    def _todo(self, step: str):
        rows = self.queue.rows(step, "pending")
        rows += [r for r in self.queue.rows(step, "failed") if r.attempts < MAX_ATTEMPTS]
        return rows

    def _fetch_and_parse(self, url: str, step: str, parse) -> Parsed | None:
        try:
            result = self._fetcher.get(url)
        except FetchError as exc:
            self._failed(step, url, str(exc))
            return None
        return self._parse(url, step, result, parse)

    def _parse(self, url: str, step: str, result, parse) -> Parsed | None:
        try:
            parsed = parse(url, (result.body or b"").decode("utf-8", errors="replace"))
        except Exception as exc:  # a page we cannot make sense of must not stop the crawl
            self._failed(step, url, f"cannot parse the page: {exc}")
            return None
        self.queue.finish(step, url, data=parsed.info.as_data() if parsed.info else None)
        return parsed

    def _in_parallel(self, urls: list[str], fetch, step: str, on_done: Callable) -> None:
        """Fetch in threads; parse and record in this thread, as results arrive."""
        parse = self.site.parse_page
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="crawl") as pool:
            pending: dict[Future, str] = {}
            urls = list(urls)
            while urls or pending:
                while urls and len(pending) < self.concurrency * 2 and not self._stop.requested:
                    url = urls.pop(0)
                    pending[pool.submit(fetch, url)] = url
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    url = pending.pop(future)
                    try:
                        parsed = self._parse(url, step, future.result(), parse)
                    except FetchError as exc:
                        self._failed(step, url, str(exc))
                        parsed = None
                    on_done(url, parsed)

    def _failed(self, step: str, url: str, error: str) -> None:
        self.queue.finish(step, url, error=error)
        self.report.failed.append((url, error))

    def _downloader(self) -> Downloader:
        return Downloader(
            self.library.catalog,
            self._fetcher,
            self.library.downloads_dir,
            concurrency=self.concurrency,
        )

    def _bar(self, desc: str, total: int | None = None) -> tqdm:
        return tqdm(
            total=total,
            desc=desc,
            unit="url",
            disable=None if self.progress is None else not self.progress,
            dynamic_ncols=True,
        )
