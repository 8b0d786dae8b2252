"""One library folder: its catalog, index and embedder opened together and kept
consistent, its layout and write lock, and what it holds, counted.
"""

from .layout import (
    CATALOG_FILE,
    DOWNLOADS_DIR,
    INDEX_FILE,
    LOCK_FILE,
    MODELS_DIR,
    WHITENING_FILE,
    LibraryError,
    LibraryLockedError,
    acquire_write_lock,
)
from .library import Library
from .stats import library_share, library_stats

__all__ = [
    "CATALOG_FILE",
    "DOWNLOADS_DIR",
    "INDEX_FILE",
    "LOCK_FILE",
    "Library",
    "LibraryError",
    "LibraryLockedError",
    "MODELS_DIR",
    "WHITENING_FILE",
    "acquire_write_lock",
    "library_share",
    "library_stats",
]
