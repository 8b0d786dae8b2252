"""Request limits enforced in front of the routes, as plain ASGI middleware:

- `BodyLimit`: a request body over the limit gets 413, whether or not it declares its length.
- `RateLimiter`: a token bucket per client address; 429 with Retry-After when it runs dry.

Both answer with the API's JSON error shape, {"detail": "..."}.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

# Room for the multipart envelope and the form fields around the file itself; the route checks
# the file against the exact limit.
MULTIPART_OVERHEAD = 64 * 1024


async def send_error(send, status: int, detail: str, headers: Iterable[tuple[str, str]] = ()):
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `max_bytes` (413), counting bytes as they arrive.

    A declared Content-Length over the limit is refused before anything is read. A chunked
    body, which declares nothing, is counted as it streams and cut off at the limit: without
    this, Starlette's form parser would spool the whole upload to a temporary file before the
    route could look at its size.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        message = f"upload larger than {self.max_bytes:,} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            # The body stays unread: the connection cannot be reused for another request.
            return await send_error(send, 413, message, [("connection", "close")])

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _BodyTooLarge:
            if started:  # too late for a clean answer; let the server drop the connection
                raise
            await send_error(send, 413, message, [("connection", "close")])


# -- rate limiting ------------------------------------------------------------------------------

_UNITS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
}  # fmt: skip


def parse_rate(text: str | None) -> float | None:
    """Requests per second from "20/s", "600/min", "1000/hour" or a bare number (per second);
    None for "", "off", "none" or "0" (no limit). ValueError for anything else."""
    text = (text or "").strip().lower()
    if text in ("", "off", "none", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?", text)
    if not match or (match.group(2) or "s") not in _UNITS:
        raise ValueError(f"not a rate: {text!r} (write e.g. 20/s, 600/min or off)")
    rate = float(match.group(1)) / _UNITS[match.group(2) or "s"]
    return rate or None


def parse_networks(values: Iterable[str]) -> tuple:
    """IP networks from addresses or CIDRs ("127.0.0.1", "10.0.0.0/8"); ValueError if bad."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client: `burst` requests at once, refilled at `rate` a second.

    Only the API (/api/...) is limited, not the page, its static files or /healthz; CORS
    preflights (OPTIONS) are never counted. The client is the connection's peer address, or,
    when the peer is one of `trusted_proxies`, the address that proxy put in X-Forwarded-For
    (read from the right, skipping other trusted proxies: anything further left was written by
    the client and proves nothing). IPv6 clients share a bucket per /64, the block one host
    usually owns. Idle buckets are forgotten once full again, and at most `max_clients` are
    kept (least recently seen go first), so memory stays bounded under address spraying.
    """

    def __init__(
        self,
        app,
        *,
        rate: float,
        burst: int,
        trusted_proxies: tuple = (),
        max_clients: int = 100_000,
        clock=time.monotonic,
    ):
        self.app = app
        self.rate = rate
        self.burst = max(1, burst)
        self.trusted = trusted_proxies
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not scope["path"].startswith("/api/")
        ):
            return await self.app(scope, receive, send)
        wait = self.take(self.client_key(scope))
        if wait > 0:
            retry = max(1, math.ceil(wait))
            return await send_error(
                send,
                429,
                f"too many requests: at most {self.rate:g} a second, bursts of {self.burst}; "
                f"retry in {retry} s",
                [("retry-after", str(retry))],
            )
        await self.app(scope, receive, send)

    def take(self, key: str) -> float:
        """Spend a token of `key`'s bucket: 0.0 if there was one, else the seconds to wait."""
        now = self.clock()
        self._forget_idle(now)
        bucket = self.buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self.buckets[key] = bucket  # to the end: the most recently seen
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # The least recently seen come first; a bucket that has refilled is the same as none.
        while self.buckets:
            key, bucket = next(iter(self.buckets.items()))
            full = bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
            if not full and len(self.buckets) < self.max_clients:
                break
            del self.buckets[key]

    def client_key(self, scope) -> str:
        peer = (scope.get("client") or ("unknown", 0))[0]
        address = _ip(peer)
        if address is not None and self._trusted(address):
            forwarded = [
                part.strip()
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
                for part in value.decode("latin-1").split(",")
            ]
            for hop in reversed(forwarded):
                hop_address = _ip(hop)
                if hop_address is None:  # garbage: keep the last address we could trust
                    break
                address = hop_address
                if not self._trusted(hop_address):
                    break
        if address is None:
            return peer
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def _trusted(self, address) -> bool:
        return any(address in network for network in self.trusted)


def _ip(text: str):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
