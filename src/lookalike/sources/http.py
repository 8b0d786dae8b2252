"""Fetching one image over HTTP(S), with a size cap and timeouts (used by URL queries)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from .base import SourceError

DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
USER_AGENT = "lookalike/0.1 (+https://github.com/lookalike; reverse image search)"


def is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def fetch_bytes(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> bytes:
    """GET `url` and return the body; raises SourceError with a readable reason.

    The body is streamed and abandoned as soon as it passes `max_bytes`, whatever
    Content-Length claimed.
    """
    own_client = client is None
    client = client or httpx.Client(
        timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
    )
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise SourceError(f"HTTP {response.status_code} for {url}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise SourceError(f"{url} is {int(declared):,} bytes, over the {max_bytes:,} limit")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(f"{url} is larger than the {max_bytes:,}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from None
    finally:
        if own_client:
            client.close()
