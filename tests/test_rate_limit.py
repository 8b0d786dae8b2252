"""Per-client rate limiting: the token bucket, who counts as the client (and when a proxy's
X-Forwarded-For is believed), 429 + Retry-After over real HTTP, and the settings."""

from __future__ import annotations

import httpx
import pytest

from lookalike.server import ServerSettings, create_app
from lookalike.server.limits import RateLimiter, parse_networks, parse_rate

from .live_server import live_server


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize(
    "text, rate",
    [("20/s", 20), ("20", 20), ("600/min", 10), ("1800 / hour", 0.5), ("2.5/sec", 2.5),
     ("off", None), ("", None), (None, None), ("0", None)],
)  # fmt: skip
def test_rates_are_parsed(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20/fortnight", "-1/s", "1e3/s", "20/s/s"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def test_the_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(None, rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)  # one token refills in 1/2 s
    assert limiter.take("b") == 0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == 0 and limiter.take("a") > 0
    clock.now += 60  # refills to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)][-1] > 0


def test_idle_clients_are_forgotten_and_their_number_bounded():
    clock = Clock()
    limiter = RateLimiter(None, rate=1, burst=2, clock=clock, max_clients=100)
    limiter.take("idle")
    clock.now += 5  # its bucket is full again: the same as no bucket
    limiter.take("busy")
    assert list(limiter.buckets) == ["busy"]
    for i in range(1000):  # address spraying
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter.buckets) <= 100


def scope(peer, forwarded=None):
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 50000), "headers": headers}


@pytest.mark.parametrize(
    "trusted, peer, forwarded, client",
    [
        ((), "198.51.100.7", None, "198.51.100.7"),
        ((), "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # no trusted proxy: ignored
        (("127.0.0.1",), "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        (("127.0.0.1",), "127.0.0.1", None, "127.0.0.1"),
        (("127.0.0.1",), "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not from the proxy
        # what the client wrote itself (left of the proxy's entry) proves nothing
        (("127.0.0.1",), "127.0.0.1", "1.1.1.1, 203.0.113.9", "203.0.113.9"),
        # a chain of trusted proxies: the first address from the right that is not one of them
        (("127.0.0.1", "10.0.0.0/8"), "127.0.0.1", "1.1.1.1, 203.0.113.9, 10.2.3.4",
         "203.0.113.9"),
        (("127.0.0.1",), "127.0.0.1", "not-an-address", "127.0.0.1"),
        (("::1",), "::1", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # IPv6 per /64
        ((), "2001:db8:1:2:bbbb::2", None, "2001:db8:1:2::/64"),
        ((), "::ffff:198.51.100.7", None, "198.51.100.7"),
    ],
)  # fmt: skip
def test_the_client_is_the_peer_or_what_a_trusted_proxy_says(trusted, peer, forwarded, client):
    limiter = RateLimiter(None, rate=1, burst=1, trusted_proxies=parse_networks(trusted))
    assert limiter.client_key(scope(peer, forwarded)) == client


# -- over real HTTP -------------------------------------------------------------------------


@pytest.fixture
def indexed(run_cli, picture_folder, library_path):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    return library_path


def serve(library, **settings):
    return live_server(create_app(library, ServerSettings(**settings)))


def test_over_the_limit_answers_429_with_retry_after(indexed):
    # one a minute, bursts of 3: the 4th request within the test's few seconds is over
    with serve(indexed, rate_limit=1 / 60, rate_burst=3) as base:
        with httpx.Client(base_url=base) as client:
            assert [client.get("/api/v1/stats").status_code for _ in range(3)] == [200] * 3
            refused = client.get("/api/v1/images/1")
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/json"
            assert "too many requests" in refused.json()["detail"]
            assert 50 <= int(refused.headers["retry-after"]) <= 60
            assert client.post("/api/v1/search", json={"id": 1}).status_code == 429
            # the page, its files and the health check are not counted
            for path in ("/", "/healthz", "/static/app.js"):
                assert client.get(path).status_code == 200, path


def test_each_client_behind_a_trusted_proxy_has_its_own_bucket(indexed):
    with serve(indexed, rate_limit=1 / 60, rate_burst=2, trusted_proxies=("127.0.0.1",)) as base:

        def get(client_address):
            headers = {"X-Forwarded-For": client_address}
            return httpx.get(f"{base}/api/v1/stats", headers=headers).status_code

        assert [get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert [get("203.0.113.2") for _ in range(3)] == [200, 200, 429]
        assert get("6.6.6.6, 203.0.113.1") == 429  # a forged first entry does not help


def test_forwarded_for_is_ignored_without_a_trusted_proxy(indexed):
    with serve(indexed, rate_limit=1 / 60, rate_burst=2) as base:
        codes = [
            httpx.get(f"{base}/api/v1/stats", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]
        assert [r.status_code for r in codes] == [200, 200, 429]


def test_no_limit_by_default(indexed):
    assert ServerSettings().rate_limit is None
    with serve(indexed) as base, httpx.Client(base_url=base) as client:
        assert {client.get("/api/v1/stats").status_code for _ in range(60)} == {200}


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOKALIKE_RATE_LIMIT", "600/min")
    monkeypatch.setenv("LOOKALIKE_RATE_BURST", "5")
    monkeypatch.setenv("LOOKALIKE_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    settings = ServerSettings.from_env()
    assert (settings.rate_limit, settings.burst) == (10.0, 5)
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert ServerSettings.from_env(rate_burst=7).burst == 7  # options win
    monkeypatch.delenv("LOOKALIKE_RATE_BURST")
    assert ServerSettings.from_env().burst == 20  # default: two seconds' worth
    with pytest.raises(ValueError):
        ServerSettings(trusted_proxies=("proxy.local",))


def test_serve_refuses_a_bad_rate(run_cli):
    code, _, err = run_cli("serve", "--rate-limit", "fast")
    assert code == 2 and "not a rate" in err
