"""A library's folder: the names of what it holds, the write lock, and the errors that tell
the user what is wrong with it.

    lookalike-library/
      catalog.sqlite3   images, places, vectors, per-step status (the source of truth)
      index.faiss       the vector index, rebuilt from the catalog whenever needed
      whitening.npz     how search ranks the index's candidates, learned from the library's
                        own images (tuning/; absent in libraries under 500 images)
      thumbnails/       thumbnail cache (filled by the web service)
      models/           model cache: downloaded weights of models not shipped with lookalike
      downloads/        download cache: fetched files under readable names (<host>/<path>)
      write.lock        held by the one process that writes (index, reindex, prune)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

DEFAULT_LIBRARY = "lookalike-library"
CATALOG_FILE = "catalog.sqlite3"
INDEX_FILE = "index.faiss"
WHITENING_FILE = "whitening.npz"  # ranking/whitening.py, learned by tuning/tuner.py
LOCK_FILE = "write.lock"
THUMBNAILS_DIR = "thumbnails"
MODELS_DIR = "models"
DOWNLOADS_DIR = "downloads"


class LibraryError(RuntimeError):
    """A problem with the library itself; the message tells the user what to do."""


class LibraryLockedError(LibraryError):
    pass


def default_library_path() -> Path:
    return Path(os.environ.get("LOOKALIKE_LIBRARY", DEFAULT_LIBRARY))


def acquire_write_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise LibraryLockedError(
            f"the library at {path.parent} is being written by {holder}; wait for it to finish "
            "(searches can run meanwhile)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"lookalike pid {os.getpid()}".encode())
    return fd
