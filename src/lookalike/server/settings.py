"""The web service's settings, from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    api_key: str | None = None  # writes (add, delete) need it; without one they are disabled
    read_key: str | None = None  # when set, reads need a key too
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser
    max_upload_bytes: int = 32 * 1024 * 1024
    allow_private_urls: bool = False  # URL searches and adds may fetch private addresses

    @classmethod
    def from_env(cls, **overrides) -> ServerSettings:
        """LOOKALIKE_API_KEY, LOOKALIKE_READ_KEY, LOOKALIKE_CORS_ORIGINS (comma-separated),
        LOOKALIKE_MAX_UPLOAD_MB; keyword arguments win over the environment."""
        origins = os.environ.get("LOOKALIKE_CORS_ORIGINS", "")
        values = {
            "api_key": os.environ.get("LOOKALIKE_API_KEY") or None,
            "read_key": os.environ.get("LOOKALIKE_READ_KEY") or None,
            "cors_origins": tuple(o.strip() for o in origins.split(",") if o.strip()),
            "max_upload_bytes": int(float(os.environ.get("LOOKALIKE_MAX_UPLOAD_MB", "32")) * 2**20),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
