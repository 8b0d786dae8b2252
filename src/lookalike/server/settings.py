"""The web service's settings, from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .limits import parse_networks, parse_rate


@dataclass(frozen=True)
class ServerSettings:
    api_key: str | None = None  # writes (add, delete) need it; without one they are disabled
    read_key: str | None = None  # when set, reads need a key too
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser
    max_upload_bytes: int = 32 * 1024 * 1024
    allow_private_urls: bool = False  # URL searches and adds may fetch private addresses
    # Per-client rate limit on /api/..., in requests a second; None: no limit (the default:
    # the server listens on 127.0.0.1 unless told otherwise, and behind a proxy that is not
    # declared trusted every client would share the proxy's one bucket).
    rate_limit: float | None = None
    rate_burst: int | None = None  # requests at once; default: two seconds' worth
    trusted_proxies: tuple[str, ...] = ()  # addresses / CIDRs whose X-Forwarded-For we believe

    @property
    def burst(self) -> int:
        if self.rate_burst is not None:
            return max(1, self.rate_burst)
        return max(1, round(2 * (self.rate_limit or 0)))

    def __post_init__(self):
        parse_networks(self.trusted_proxies)  # ValueError now rather than at the first request

    @classmethod
    def from_env(cls, **overrides) -> ServerSettings:
        """LOOKALIKE_API_KEY, LOOKALIKE_READ_KEY, LOOKALIKE_CORS_ORIGINS (comma-separated),
        LOOKALIKE_MAX_UPLOAD_MB, LOOKALIKE_RATE_LIMIT ("20/s", "600/min", "off"),
        LOOKALIKE_RATE_BURST, LOOKALIKE_TRUSTED_PROXIES (comma-separated addresses or CIDRs);
        keyword arguments that are not None win over the environment."""
        env = os.environ.get
        values = {
            "api_key": env("LOOKALIKE_API_KEY") or None,
            "read_key": env("LOOKALIKE_READ_KEY") or None,
            "cors_origins": _split(env("LOOKALIKE_CORS_ORIGINS", "")),
            "max_upload_bytes": int(float(env("LOOKALIKE_MAX_UPLOAD_MB", "32")) * 2**20),
            "rate_limit": parse_rate(env("LOOKALIKE_RATE_LIMIT")),
            "rate_burst": int(env("LOOKALIKE_RATE_BURST")) if env("LOOKALIKE_RATE_BURST") else None,
            "trusted_proxies": _split(env("LOOKALIKE_TRUSTED_PROXIES", "")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
