"""Catalog tables for the web: the download log (the cache's index) and the crawl queues.

Both are written by the main thread only; fetching threads hand their results back to it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .records import display_url
from .store import Catalog


@dataclass(frozen=True)
class DownloadRow:
    url: str
    path: str | None
    status: str  # done | failed
    content_type: str | None
    size: int | None
    error: str | None
    attempts: int


class DownloadLog:
    def __init__(self, catalog: Catalog):
        self.conn = catalog.conn

    def get(self, url: str) -> DownloadRow | None:
        row = self.conn.execute(
            "SELECT url, path, status, content_type, size, error, attempts FROM downloads"
            " WHERE url = ?",
            (url,),
        ).fetchone()
        return DownloadRow(*row) if row else None

    def path_owner(self, path: str) -> str | None:
        row = self.conn.execute("SELECT url FROM downloads WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def record(
        self,
        url: str,
        *,
        path: str | None,
        status: str,
        http_status: int | None = None,
        content_type: str | None = None,
        size: int | None = None,
        error: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.conn.execute(
            "INSERT INTO downloads (url, source, path, status, http_status, content_type, size,"
            " error, attempts, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (url) DO UPDATE SET path = excluded.path, status = excluded.status,"
            " http_status = excluded.http_status, content_type = excluded.content_type,"
            " size = excluded.size, error = excluded.error,"
            " attempts = downloads.attempts + excluded.attempts, fetched_at = excluded.fetched_at",
            (
                url,
                display_url(url),
                path,
                status,
                http_status,
                content_type,
                size,
                error,
                attempts,
                time.time(),
            ),
        )

    def cached_path(self, source: str) -> str | None:
        """The cached file of a place whose source is this (decoded) URL, if downloaded."""
        row = self.conn.execute(
            "SELECT path FROM downloads WHERE source = ? AND status = 'done' AND path IS NOT NULL",
            (source,),
        ).fetchone()
        return row[0] if row else None


@dataclass(frozen=True)
class QueueRow:
    url: str
    status: str  # pending | done | failed
    attempts: int
    error: str | None
    data: dict


class CrawlQueue:
    """One crawl's work: a row per URL per step ('listing', 'page', 'file')."""

    def __init__(self, catalog: Catalog, crawl: str):
        self.conn = catalog.conn
        self.crawl = crawl

    def add(self, step: str, url: str, data: dict | None = None) -> bool:
        """Queue `url` for `step` unless it is there already; True when it is new."""
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO crawl_queue (crawl, step, url, data, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (self.crawl, step, url, json.dumps(data or {}), time.time()),
        )
        return cursor.rowcount == 1

    def get(self, step: str, url: str) -> QueueRow | None:
        row = self.conn.execute(
            "SELECT url, status, attempts, error, data FROM crawl_queue"
            " WHERE crawl = ? AND step = ? AND url = ?",
            (self.crawl, step, url),
        ).fetchone()
        return _queue_row(row) if row else None

    def rows(self, step: str, status: str) -> list[QueueRow]:
        return [
            _queue_row(r)
            for r in self.conn.execute(
                "SELECT url, status, attempts, error, data FROM crawl_queue"
                " WHERE crawl = ? AND step = ? AND status = ? ORDER BY id",
                (self.crawl, step, status),
            )
        ]

    def finish(self, step: str, url: str, *, error: str | None = None, data: dict | None = None):
        """Mark done (or failed, with `error`), counting the attempt; `data` replaces the row's."""
        self.conn.execute(
            "UPDATE crawl_queue SET status = ?, error = ?, attempts = attempts + 1,"
            " data = COALESCE(?, data), updated_at = ? WHERE crawl = ? AND step = ? AND url = ?",
            (
                "failed" if error else "done",
                error,
                json.dumps(data) if data is not None else None,
                time.time(),
                self.crawl,
                step,
                url,
            ),
        )

    def reopen_one(self, step: str, url: str) -> None:
        self.conn.execute(
            "UPDATE crawl_queue SET status = 'pending' WHERE crawl = ? AND step = ? AND url = ?",
            (self.crawl, step, url),
        )

    def counts(self) -> dict[tuple[str, str], int]:
        return {
            (step, status): n
            for step, status, n in self.conn.execute(
                "SELECT step, status, COUNT(*) FROM crawl_queue WHERE crawl = ?"
                " GROUP BY step, status",
                (self.crawl,),
            )
        }


def _queue_row(row) -> QueueRow:
    url, status, attempts, error, data = row
    return QueueRow(url, status, attempts, error, json.loads(data) if data else {})
