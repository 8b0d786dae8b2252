"""Fetching over HTTP(S) politely and safely: httpx with timeouts, retries with backoff (and
429/Retry-After), a size cap, a per-host rate limit, robots.txt, and a guard that refuses
private, loopback, link-local and other non-public addresses, checked again on every redirect.

The guard is enforced where the socket is opened (GuardedNetworkBackend): the name is resolved
once, every address is checked, and the connection goes to a checked address. Checking a name
and then letting the HTTP client resolve it again would let a DNS answer that changes in
between (DNS rebinding) send the request to 127.0.0.1 or 169.254.169.254.

One `Fetcher` is shared by the threads of a crawl or a URL list: httpx clients are thread-safe,
and the rate limit and robots cache are guarded by locks.
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from lookalike.catalog import display_url  # noqa: F401  (re-exported for sources)

from .base import SourceError

DEFAULT_MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
USER_AGENT = (
    "lookalike/0.1 (self-hosted reverse image search; +https://pypi.org/project/lookalike/)"
)
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 5


class FetchError(SourceError):
    """A URL could not be fetched; the message says why (for the catalog and the user)."""


class HttpStatusError(FetchError):
    def __init__(self, status: int, url: str):
        super().__init__(f"HTTP {status} for {url}")
        self.status = status


class BlockedAddressError(FetchError):
    """The URL points at a private, loopback, link-local or otherwise non-public address."""


def is_url(text: str) -> bool:
    try:
        return urlsplit(text).scheme in ("http", "https")
    except ValueError:  # "http://[" and other malformed URLs are not fetchable URLs
        return False


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False  # tests and intranet crawls only
    timeout: float = 30.0  # seconds, for connecting and between bytes
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    retries: int = 3  # after the first attempt
    backoff: float = 1.0  # seconds; doubled each retry, with jitter
    max_retry_after: float = 120.0  # a longer Retry-After fails the URL instead of waiting
    requests_per_second: float | None = None  # per host; None: no limit
    respect_robots: bool = False
    user_agent: str = USER_AGENT


@dataclass
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    content_type: str
    size: int
    body: bytes | None = None  # when fetched into memory
    attempts: int = 1


# host, port -> the addresses (as text) to connect to
Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def public_addresses(host: str, port: int, resolve: Resolver = system_resolve) -> list[str]:
    """The addresses `host` resolves to, if every one of them is public; else refuse.

    All of them, not just the first: a name that answers both a public and a private address
    would otherwise let the connection pick the private one."""
    try:
        addresses = [str(ipaddress.ip_address(host.strip("[]")))]  # a literal: no lookup
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host}: {getattr(exc, 'strerror', exc)}") from None
    if not addresses:
        raise FetchError(f"cannot resolve {host}: no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not _is_public(address):
            raise BlockedAddressError(
                f"{host} resolves to {address}, a non-public address; refused "
                "(pass --allow-private to fetch from private networks)"
            )
    return addresses


class GuardedNetworkBackend(httpcore.NetworkBackend):
    """httpcore's socket layer, connecting only to addresses it has just resolved and checked.

    TLS is unaffected: httpcore still does the handshake (SNI, certificate) against the URL's
    host name; only the TCP endpoint is the checked literal address."""

    def __init__(self, resolve: Resolver = system_resolve):
        self._resolve = resolve
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception | None = None
        for address in public_addresses(host, port, self._resolve):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address, as a resolver would
                error = exc
        raise error  # type: ignore[misc]

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise BlockedAddressError("fetching through unix sockets is refused")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(resolve: Resolver = system_resolve) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through GuardedNetworkBackend."""
    transport = httpx.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    if not hasattr(pool, "_network_backend"):  # fail loudly rather than fetch unguarded
        raise RuntimeError(
            f"httpx {httpx.__version__} / httpcore {httpcore.__version__}: cannot install the "
            "address guard; please report this"
        )
    pool._network_backend = GuardedNetworkBackend(resolve)
    return transport


class Fetcher:
    def __init__(self, policy: FetchPolicy = FetchPolicy(), *, resolve: Resolver = system_resolve):
        self.policy = policy
        self._resolve = resolve
        # An explicit transport also keeps httpx from routing through $HTTP_PROXY, where the
        # proxy, not this guard, would choose the address.
        self._client = httpx.Client(
            transport=httpx.HTTPTransport() if policy.allow_private else guarded_transport(resolve),
            timeout=httpx.Timeout(policy.timeout),
            follow_redirects=False,  # redirects are followed by hand, each hop checked
            headers={"User-Agent": policy.user_agent},
        )
        self._host_lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._robots_lock = threading.Lock()
        self._crawl_delay: dict[str, float] = {}  # host -> seconds, from robots.txt

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------------

    def get(self, url: str, *, max_bytes: int | None = None) -> FetchResult:
        """GET into memory (pages, small files)."""
        chunks: list[bytes] = []
        result = self._fetch(url, chunks.append, max_bytes or self.policy.max_bytes)
        result.body = b"".join(chunks)
        return result

    def download(self, url: str, target: Path, *, max_bytes: int | None = None) -> FetchResult:
        """GET into `target`, written aside and renamed into place when complete."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with open(partial, "wb") as out:
            try:
                result = self._fetch(url, out.write, max_bytes or self.policy.max_bytes, reset=out)
            except BaseException:
                out.close()
                partial.unlink(missing_ok=True)
                raise
        partial.replace(target)
        return result

    # -- the fetch loop: robots, rate limit, address guard, redirects, retries -------------------

    def _fetch(self, url: str, write, max_bytes: int, reset=None) -> FetchResult:
        if not is_url(url):
            raise FetchError(f"not an http(s) URL: {url}")
        self.check_address(url)  # before robots.txt, which would be fetched from there too
        if self.policy.respect_robots and not self.allowed_by_robots(url):
            raise FetchError(f"disallowed by robots.txt: {url}")
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._fetch_once(url, write, max_bytes)
                result.attempts = attempt
                return result
            except _Retryable as exc:
                if attempt > self.policy.retries:
                    raise FetchError(f"{exc.message} (after {attempt} attempts)") from None
                delay = exc.retry_after
                if delay is None:
                    delay = self.policy.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                if delay > self.policy.max_retry_after:
                    raise FetchError(f"{exc.message}; asked to retry after {delay:.0f} s") from None
                if reset is not None:  # start the file again
                    reset.seek(0)
                    reset.truncate()
                time.sleep(delay)

    def _fetch_once(self, url: str, write, max_bytes: int) -> FetchResult:
        for _ in range(MAX_REDIRECTS + 1):
            self.check_address(url)
            self._wait_for_slot(url)
            try:
                with self._client.stream("GET", url) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"HTTP {response.status_code} without Location: {url}")
                        url = urljoin(url, location)
                        continue
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(
                            f"HTTP {response.status_code} for {url}",
                            _retry_after(response.headers.get("retry-after")),
                        )
                    if response.status_code >= 400:
                        raise HttpStatusError(response.status_code, url)
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise FetchError(
                            f"{url} is {int(declared):,} bytes, over the {max_bytes:,} limit"
                        )
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchError(f"{url} is larger than the {max_bytes:,}-byte limit")
                        write(chunk)
                    return FetchResult(
                        url=str(response.url),
                        status=response.status_code,
                        content_type=response.headers.get("content-type", ""),
                        size=size,
                    )
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise _Retryable(f"{type(exc).__name__} for {url}: {exc}", None) from None
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None
        raise FetchError(f"more than {MAX_REDIRECTS} redirects from {url}")

    # -- guards ---------------------------------------------------------------------------------

    def check_address(self, url: str) -> None:
        """Refuse URLs whose host resolves to a non-public address (unless allowed) early,
        before robots.txt or a rate-limit wait; the connection itself is checked again."""
        parts = urlsplit(url)
        if not parts.hostname:
            raise FetchError(f"no host in URL: {url}")
        if self.policy.allow_private:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"bad port in URL: {url}") from None
        public_addresses(parts.hostname, port, self._resolve)

    def allowed_by_robots(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_lock:
            if origin not in self._robots:
                self._robots[origin] = self._load_robots(origin)
            parser = self._robots[origin]
        if parser is None:
            return True
        return parser.can_fetch(self.policy.user_agent, url)

    def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | None:
        """The site's robots.txt; None when it has none (everything allowed). A site whose
        robots.txt cannot be fetched at all is left alone, as the robots convention asks."""
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        body: list[bytes] = []
        try:
            self._fetch_once(origin + "/robots.txt", body.append, 512 * 1024)
        except HttpStatusError as exc:
            if 400 <= exc.status < 500:
                return None
            parser.parse(["User-agent: *", "Disallow: /"])
            return parser
        except (FetchError, _Retryable):
            parser.parse(["User-agent: *", "Disallow: /"])
            return parser
        parser.parse(b"".join(body).decode("utf-8", errors="replace").splitlines())
        delay = parser.crawl_delay(self.policy.user_agent)
        if delay:
            with self._host_lock:
                self._crawl_delay[urlsplit(origin).netloc] = float(delay)
        return parser

    def _wait_for_slot(self, url: str) -> None:
        host = urlsplit(url).netloc
        interval = 1.0 / self.policy.requests_per_second if self.policy.requests_per_second else 0.0
        interval = max(interval, self._crawl_delay.get(host, 0.0))
        if interval <= 0:
            return
        with self._host_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, 0.0))
            self._next_slot[host] = slot + interval
        if slot > now:
            time.sleep(slot - now)


class _Retryable(Exception):
    """A failure worth another attempt: a network error, 429 or a 5xx."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def fetch_bytes(
    url: str, *, max_bytes: int = 64 * 1024 * 1024, allow_private: bool = True
) -> bytes:
    """One GET into memory with the default policy (used by URL queries)."""
    with Fetcher(FetchPolicy(allow_private=allow_private, max_bytes=max_bytes, retries=1)) as f:
        return f.get(url).body or b""
