"""The address guard holds where the socket is opened: a DNS answer that changes between the
check and the connection (DNS rebinding) cannot reach a loopback service.

A scripted resolver stands in for a rebinding name server (the tests cannot change the
machine's DNS); the service it tries to reach is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import threading

import pytest

from lookalike.sources.http import (
    BlockedAddressError,
    Fetcher,
    FetchPolicy,
    GuardedNetworkBackend,
    is_url,
    public_addresses,
)

PUBLIC = "93.184.216.34"  # a global address; nothing here can connect to it (no internet)


class _Secret(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal secret")

    def log_message(self, *args):
        pass


@pytest.fixture
def internal_service():
    _Secret.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


class Rebinding:
    """Answers a public address to the first lookup and loopback to every later one."""

    def __init__(self, first: list[str], then: list[str]):
        self.first, self.then, self.lookups = first, then, []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.first if len(self.lookups) == 1 else self.then


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect(internal_service):
    resolve = Rebinding([PUBLIC], ["127.0.0.1"])
    with Fetcher(FetchPolicy(retries=0), resolve=resolve) as fetcher:
        with pytest.raises(BlockedAddressError, match="127.0.0.1"):
            fetcher.get(f"http://rebind.example:{internal_service}/admin")
    assert len(resolve.lookups) == 2  # the early check, then the connection's own lookup
    assert _Secret.hits == []


def test_the_connection_goes_to_the_address_that_was_checked(internal_service):
    """The guarded socket layer never hands the name to a second resolver: with a public
    answer it connects to that address (unreachable here), not to whatever the name says next."""
    resolve = Rebinding([PUBLIC], [PUBLIC])
    backend = GuardedNetworkBackend(resolve)
    with pytest.raises(Exception) as failure:
        backend.connect_tcp("rebind.example", internal_service, timeout=1.0)
    assert not isinstance(failure.value, BlockedAddressError)
    assert resolve.lookups == ["rebind.example"] and _Secret.hits == []


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], [PUBLIC, "127.0.0.1"], ["169.254.169.254"], ["::1"], ["::ffff:10.0.0.1"]],
)
def test_any_non_public_answer_refuses_the_name(answers):
    with pytest.raises(BlockedAddressError):
        public_addresses("mixed.example", 80, lambda host, port: answers)


def test_private_fetching_when_allowed_still_works(internal_service):
    with Fetcher(FetchPolicy(allow_private=True, retries=0)) as fetcher:
        assert fetcher.get(f"http://127.0.0.1:{internal_service}/ok").body == b"internal secret"
    assert _Secret.hits == ["/ok"]


def test_malformed_urls_are_not_urls():
    assert not is_url("http://[") and not is_url("https://[::1")
    assert is_url("http://example.org/a.png")
