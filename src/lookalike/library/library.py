"""A library: one folder holding everything lookalike knows about one image collection.

    lookalike-library/
      catalog.sqlite3   images, places, vectors, per-step status (the source of truth)
      index.faiss       the vector index, rebuilt from the catalog whenever needed
      whitening.npz     how search ranks the index's candidates, learned from the library's
                        own images (tuning/tuner.py; absent in libraries under 500 images)
      thumbnails/       thumbnail cache (filled by the web service)
      models/           model cache: downloaded weights of models not shipped with lookalike
      downloads/        download cache: fetched files under readable names (<host>/<path>)
      write.lock        held by the one process that writes (index, reindex, prune)

`Library` ties the catalog, the index and the embedder together and keeps them consistent:
the catalog commits vectors before the index is saved, and every open reconciles the index
with the catalog (adds vectors the saved index lacks, drops ids the catalog no longer has), so
a kill at any moment costs at most the uncommitted batch (vector_store.py).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from lookalike.catalog import Catalog, ModelChooser
from lookalike.embed import DEFAULT_MODEL, Embedder, create_embedder
from lookalike.index import StoreConfig, TinyPictures, VectorIndex
from lookalike.ranking import Whitening, WhiteningError

from .layout import (
    CATALOG_FILE,
    DOWNLOADS_DIR,
    INDEX_FILE,
    LOCK_FILE,
    MODELS_DIR,
    THUMBNAILS_DIR,
    WHITENING_FILE,
    LibraryError,
    acquire_write_lock,
    default_library_path,
)
from .vector_store import LibraryVectorStore

log = logging.getLogger(__name__)


class Library(LibraryVectorStore):
    def __init__(self, root: Path, catalog: Catalog, *, writable: bool):
        self.root = root
        self.catalog = catalog
        self.writable = writable
        self._lock_fd: int | None = None
        self._index: VectorIndex | None = None
        self._embedder: Embedder | None = None
        self._tiny: TinyPictures | None = None
        self._whitening: Whitening | None = None
        self._whitening_stamp: tuple[int, int] | None = None  # the file's, when it was read
        self.weights: Path | None = None  # a weights file or folder the user gave

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path | None = None,
        *,
        write: bool = False,
        model: str | None = None,
        store: StoreConfig | None = None,
        weights: Path | None = None,
    ) -> Library:
        """Open (and with `write`, create if needed and lock) the library at `root`.

        `model` and `store` name the embedder and the vector store for a new library; for an
        existing one they must match what it was built with. `weights`: where the model's
        weights are, when they are neither shipped nor in the library's model cache.
        """
        root = Path(root or default_library_path())
        catalog_path = root / CATALOG_FILE
        if not write and not catalog_path.exists():
            raise LibraryError(
                f"no library at {root}: index some images first (lookalike index PATH), "
                "or point --library / LOOKALIKE_LIBRARY at an existing one"
            )
        lock_fd = None
        if write:
            for folder in (root, root / THUMBNAILS_DIR, root / MODELS_DIR):
                folder.mkdir(parents=True, exist_ok=True)
            lock_fd = acquire_write_lock(root / LOCK_FILE)
        try:
            catalog = Catalog(catalog_path)
            library = cls(root, catalog, writable=write)
            library._lock_fd = lock_fd
            library.weights = Path(weights) if weights else None
            library._check_model(model)
            library._check_store(store)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return library

    def close(self) -> None:
        close_index = getattr(self._index, "close", None)  # a Milvus client lets go of its file
        if close_index is not None:
            close_index()
        self.catalog.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model ----------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.catalog.get_meta("model") or DEFAULT_MODEL

    @property
    def model_chosen_by(self) -> ModelChooser:
        """'user' (named by `index --model`, or by `reindex --model`), 'default' (nobody
        named one, so `lookalike tune` may switch a library of palette swaps to a model that
        ignores colour: tuning/recolours.py) or 'tune' (it did). Libraries made before this was
        recorded count as 'user': they are never switched behind their owner's back."""
        chosen = self.catalog.get_meta("model_chosen_by")
        return chosen if chosen in ("default", "tune") else "user"

    def _check_model(self, requested: str | None) -> None:
        recorded = self.catalog.get_meta("model")
        if recorded is None:
            if self.writable:
                with self.catalog.transaction():
                    self.catalog.set_meta("model", requested or DEFAULT_MODEL)
                    self.catalog.set_meta("model_chosen_by", "user" if requested else "default")
                    self.catalog.set_meta("created_at", str(time.time()))
            return
        if requested == recorded and self.writable and self.model_chosen_by == "default":
            with self.catalog.transaction():  # named now: tune will not switch it
                self.catalog.set_meta("model_chosen_by", "user")
        if requested and requested != recorded:
            raise LibraryError(
                f"the library at {self.root} was built with model {recorded!r}, not "
                f"{requested!r}; a library never mixes models. Re-embed it with "
                f"`lookalike reindex --model {requested}`, or use another --library."
            )

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = create_embedder(
                self.model_name, weights=self.weights, cache_dir=self.models_dir
            )
            recorded = self.catalog.get_meta("model_id")
            if recorded and recorded != self._embedder.model_id:
                raise LibraryError(
                    f"the library's vectors were made by {recorded}, but this lookalike has "
                    f"{self._embedder.model_id}; run `lookalike reindex --model "
                    f"{self.model_name}` to re-embed them"
                )
            if recorded is None and self.writable:
                with self.catalog.transaction():
                    self.catalog.set_meta("model_id", self._embedder.model_id)
                    self.catalog.set_meta("dim", str(self._embedder.dim))
        return self._embedder

    def set_embedder(self, embedder: Embedder) -> None:
        """Use an already-loaded embedder (the server shares one across requests)."""
        self._embedder = embedder

    # -- ranking and tiny pictures --------------------------------------------------------------

    @property
    def whitening(self) -> Whitening | None:
        """The whitening learned for this library's vectors (tuning/tuner.py), or None: none learned,
        learned for another model (after `reindex --model`), or unreadable (a warning is
        logged; search then ranks by plain cosine similarity, as before tuning). Read again
        when the file changes, so a running server follows `lookalike tune`."""
        path = self.root / WHITENING_FILE
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._whitening_stamp:
            self._whitening, self._whitening_stamp = None, stamp
            if stamp is not None:
                self._whitening = self._read_whitening(path)
        return self._whitening

    def _read_whitening(self, path: Path) -> Whitening | None:
        try:
            whitening = Whitening.load(path)
        except WhiteningError as exc:
            log.warning("%s; ranking without it (lookalike tune learns it again)", exc)
            return None
        model_id = self.catalog.get_meta("model_id")
        dim = self.catalog.dim
        if whitening.model_id != model_id or whitening.mean.shape[0] - whitening.detail_dim != dim:
            return None  # another model's: `index` or `tune` learns this one's
        return whitening

    def set_whitening(self, whitening: Whitening) -> None:
        """Save `whitening` and rank by it from now on."""
        assert self.writable, "set_whitening needs a library opened for writing"
        path = self.root / WHITENING_FILE
        whitening.save(path)
        stat = path.stat()
        self._whitening, self._whitening_stamp = whitening, (stat.st_mtime_ns, stat.st_size)

    @property
    def tiny_pictures(self) -> TinyPictures:
        """The images' tiny pictures (index/tiny.py), read from the catalog when first asked."""
        if self._tiny is None:
            self._tiny = TinyPictures()
        return self._tiny

    def set_tiny_pictures(self, tiny: TinyPictures) -> None:
        """Share tiny pictures already in memory (the server, across its threads)."""
        self._tiny = tiny

    # -- the folder ---------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def thumbnails_dir(self) -> Path:
        return self.root / THUMBNAILS_DIR

    @property
    def models_dir(self) -> Path:
        return self.root / MODELS_DIR

    @property
    def downloads_dir(self) -> Path:
        return self.root / DOWNLOADS_DIR

    # -- sizes, for stats -----------------------------------------------------------------------

    def bytes_on_disk(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name in (CATALOG_FILE, CATALOG_FILE + "-wal", INDEX_FILE):
            path = self.root / name
            if path.exists():
                sizes[name] = path.stat().st_size
        for folder in (self.thumbnails_dir, self.models_dir, self.downloads_dir):
            if folder.exists():
                sizes[folder.name + "/"] = sum(
                    p.stat().st_size for p in folder.rglob("*") if p.is_file()
                )
        return sizes
