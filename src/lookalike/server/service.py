"""One library shared by a long-running web service.

- One embedder for all requests (onnxruntime sessions are safe to call from many threads).
- One in-memory index behind a lock (`LockedIndex`): FAISS may search from many threads but not
  while an add or remove runs; searches hold the lock only for the search itself, never while
  a query is decoded or embedded.
- One SQLite connection per thread (sqlite3 connections stay in their thread).
- Writes (an add or delete through the API) take the library's write lock for their own short
  duration, so the CLI can index between them; a write never makes a search wait for it.
- Changes made by other processes (a `lookalike index` run) are picked up: the index is
  reconciled with the catalog when SQLite's data_version says another connection committed.
- The index file is saved by a background thread when it changed; the catalog holds every
  vector meanwhile, so nothing is lost if the service dies first.
- The same thread learns the library's ranking (tuning/tuner.py) when images added through the API
  make it due, as `lookalike index` does: it reads and embeds without the write lock, so adds
  go on meanwhile, and takes the lock only to save it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lookalike.catalog import VECTOR_STATUSES, Catalog, DownloadLog, Place, as_stored, display_url
from lookalike.index import FaissIndex, TinyPictures, VectorIndex, confirm
from lookalike.ingest import image_sha256, prepare_image
from lookalike.library import CATALOG_FILE, Library, LibraryLockedError
from lookalike.pictures import DEFAULT_MAX_PIXELS
from lookalike.search import Searcher
from lookalike.sources import (
    Downloader,
    Fetcher,
    FetchError,
    FetchPolicy,
    read_image_bytes,
    safe_filename,
)
from lookalike.tuning import due, learn, recolour_blind_model, recolour_note

UPLOADS_DIR = "uploads"

log = logging.getLogger(__name__)


class LockedIndex(VectorIndex):
    """A FaissIndex whose every call holds one lock; `swap` replaces it (after a rebuild)."""

    def __init__(self, index: FaissIndex):
        self._index = index
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self._index.kind

    @property
    def dim(self) -> int:
        return self._index.dim

    def __len__(self) -> int:
        return len(self._index)

    @property
    def filters_pushdown(self) -> bool:
        return self._index.filters_pushdown

    @property
    def approximate(self) -> bool:
        return getattr(self._index, "approximate", False)

    def add(self, ids, vectors, attributes=None) -> None:
        with self._lock:
            self._index.add(ids, vectors, attributes)

    def remove(self, ids) -> int:
        with self._lock:
            return self._index.remove(ids)

    def search(self, queries, k, *, allowed=None, filters=None):
        with self._lock:
            return self._index.search(queries, k, allowed=allowed, filters=filters)

    def ids(self) -> np.ndarray:
        with self._lock:
            return self._index.ids()

    def needs_rebuild(self) -> bool:
        return self._index.needs_rebuild()

    def save(self, path: Path | None = None) -> None:
        with self._lock:
            self._index.save(path)

    def drop(self) -> None:
        self._index.drop()

    def close(self) -> None:
        pass  # the service closes the shared index itself, not each per-request library

    def swap(self, index: FaissIndex) -> None:
        with self._lock:
            self._index = index


class WriteBusy(RuntimeError):
    """Another process (a CLI index run) holds the library's write lock."""


class ModelChanged(RuntimeError):
    """`lookalike reindex --model` switched the library to another model while this service
    ran: its model and index no longer match the catalog's vectors."""


class LibraryService:
    def __init__(
        self,
        root: Path,
        *,
        allow_private_urls: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        save_every: float = 30.0,
        store=None,
        weights: Path | None = None,
    ):
        self.root = Path(root)
        with Library.open(
            self.root, store=store, weights=weights
        ) as library:  # LibraryError if there is none
            self.model_name = library.model_name
            self.embedder = library.embedder
            self.index = LockedIndex(library.detach_index())
        self.tiny_pictures = TinyPictures(recheck_every=1.0)  # read on a first verified search
        self.allow_private_urls = allow_private_urls
        self.max_pixels = max_pixels
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._refresh_catalog = Catalog(self.root / CATALOG_FILE, any_thread=True)  # locked
        self._data_version = self._version()
        self._last_refresh = time.monotonic()
        self._dirty = False
        self._grown = True  # images were added since the ranking was last looked at
        self._model_changed: str | None = None
        self._closing = threading.Event()
        self._saver = threading.Thread(target=self._save_loop, args=(save_every,), daemon=True)
        self._saver.start()

    # -- per-thread views ---------------------------------------------------------------------

    def library(self) -> Library:
        """A read-only Library for this thread: its own connection, the shared model and index."""
        library = getattr(self._local, "library", None)
        if library is None:
            library = Library(self.root, Catalog(self.root / CATALOG_FILE), writable=False)
            library.set_embedder(self.embedder)
            library.set_index(self.index)
            library.set_tiny_pictures(self.tiny_pictures)
            self._local.library = library
        return library

    def searcher(self) -> Searcher:
        self.refresh()
        if self._model_changed:
            raise ModelChanged(
                f"the library was re-embedded with {self._model_changed} while this server ran "
                f"with {self.embedder.model_id}: restart lookalike serve"
            )
        return Searcher(self.library())

    # -- keeping up with other writers --------------------------------------------------------

    def refresh(self, *, at_most_every: float = 1.0) -> None:
        """Reconcile the index with the catalog if another connection committed since."""
        if time.monotonic() - self._last_refresh < at_most_every:
            return
        with self._refresh_lock:
            self._last_refresh = time.monotonic()
            version = self._version()
            if version == self._data_version:
                return
            self._data_version = version
            model_id = self._refresh_catalog.get_meta("model_id")
            if model_id and model_id != self.embedder.model_id:
                self._model_changed = model_id  # reconciling would mix two models' vectors
                return
            view = Library(self.root, self._refresh_catalog, writable=False)
            view.set_index(self.index)
            view.reconcile(self.index)

    def _version(self) -> int:
        return self._refresh_catalog.data_version()

    # -- writes ---------------------------------------------------------------------------------

    def add_image(self, data: bytes, place: Place) -> tuple[int, bool]:
        """Index one image; (id, True) when new, (id, False) when its bytes were known."""
        sha = image_sha256(data)
        prepared = vector = details = None
        known = self.library().catalog.image_by_sha(sha)
        if not (known and known[1] in VECTOR_STATUSES):
            prepared = prepare_image(  # raises DecodeError
                data, sha, self.embedder.preprocessor(), max_pixels=self.max_pixels
            )
            # a batch of one, as indexing embeds: the same input gives the same vector
            vector, details = self.embedder.embed_with_details(np.stack([prepared.pixels]))
            vector = as_stored(vector)
        if (
            place.source.startswith(str(self.root / UPLOADS_DIR))
            and not Path(place.source).exists()
        ):
            Path(place.source).parent.mkdir(parents=True, exist_ok=True)
            Path(place.source).write_bytes(data)  # uploads keep their bytes: /file needs them
        with self._writer() as library:
            catalog = library.catalog
            with catalog.transaction():
                known = catalog.image_by_sha(sha)
                if known and known[1] in VECTOR_STATUSES:
                    catalog.put_place(known[0], place, len(data), None)
                    return known[0], False
                image_id = catalog.put_image(prepared.image)
                catalog.put_place(image_id, place, len(data), None)
                catalog.store_vectors([image_id], vector, self.embedder.model_id, details)
            library.add_to_index(np.array([image_id], dtype=np.int64), vector)
            self._dirty = self._grown = True
        return image_id, True

    def upload_place(self, data: bytes, filename: str | None, **meta) -> Place:
        """Where an uploaded image is kept: <library>/uploads/<sha256>/<its file name>."""
        name = safe_filename(Path(filename or "").name) or "upload"
        target = self.root / UPLOADS_DIR / hashlib.sha256(data).hexdigest() / name
        return Place(source=str(target), **meta)

    def fetch(self, url: str) -> bytes:
        """Fetch a URL into memory, for a search: nothing is kept (FetchError if it fails)."""
        policy = FetchPolicy(allow_private=self.allow_private_urls, max_bytes=64 << 20, retries=1)
        with Fetcher(policy) as fetcher:
            return fetcher.get(url).body or b""

    def download(self, url: str) -> bytes:
        """Fetch a URL into the download cache, for an add (FetchError if it cannot be had)."""
        policy = FetchPolicy(allow_private=self.allow_private_urls, max_bytes=64 << 20, retries=1)
        library = self.library()  # no write lock: a download must not hold up other writes
        with Fetcher(policy) as fetcher:
            downloader = Downloader(library.catalog, fetcher, library.downloads_dir, concurrency=1)
            (result,) = downloader.fetch_all([url])
        if result.path is None:
            raise FetchError(result.error or f"cannot fetch {url}")
        return result.path.read_bytes()

    def url_place(self, url: str, **meta) -> Place:
        return Place(source=display_url(url), **meta)

    def delete_image(self, image_id: int) -> bool:
        with self._writer() as library:
            with library.catalog.transaction():
                if library.catalog.image(image_id) is None:
                    return False
                library.catalog.delete_images([image_id])
            self.index.remove(np.array([image_id], dtype=np.int64))
            self._dirty = True
        return True

    def image_bytes(self, image_id: int) -> bytes | None:
        library = self.library()
        record = library.catalog.image(image_id)
        if record is None:
            return None
        return read_image_bytes(record, DownloadLog(library.catalog), library.downloads_dir)

    @contextmanager
    def _writer(self) -> Iterator[Library]:
        """The library opened for writing (its flock held) for the duration of a `with`."""
        with self._write_lock:
            try:
                library = Library.open(self.root, write=True)
            except LibraryLockedError as exc:
                raise WriteBusy(str(exc)) from None
            try:
                library.set_embedder(self.embedder)
                library.set_index(self.index)
                yield library
            finally:
                library.close()

    # -- saving ---------------------------------------------------------------------------------

    def save_if_dirty(self) -> bool:
        if not self._dirty:
            return False
        try:
            with self._writer() as library:
                self._dirty = False
                if library.store.kind == "milvus":
                    confirm(library, self.index)  # flush, then rows are indexed
                    return True
                if self.index.needs_rebuild():
                    chunks = list(library.catalog.iter_vectors())
                    ids = np.concatenate([c[0] for c in chunks])
                    self.index.swap(FaissIndex.build(ids, np.concatenate([c[1] for c in chunks])))
                self.index.save(library.index_path)
                ids = self.index.ids()
                with library.catalog.transaction():
                    library.catalog.mark_indexed(ids)
                    pending = library.catalog.pending_deletes()
                    library.catalog.clear_pending_deletes(np.setdiff1d(pending, ids))
        except WriteBusy:
            return False  # a CLI run is writing; try again later
        return True

    def learn_ranking_if_due(self) -> bool:
        """Learn and save the library's ranking when `tuner.due` says so (once it holds
        MIN_IMAGES, and each time it has doubled); True when one was saved."""
        if not self._grown:
            return False
        self._grown = False
        if not due(self.library()):
            return False
        report = learn(self.library(), progress=False)  # reads only: adds go on
        if report.whitening is None:
            return False
        try:
            with self._writer() as library:
                if not due(library):  # `lookalike tune` or `index` learnt one meanwhile
                    return False
                library.set_whitening(report.whitening)
        except WriteBusy:
            self._grown = True  # a CLI run is writing (and learns one itself); look again later
            return False
        log.info("learned the library's ranking from %d images", report.sampled)
        library = self.library()
        share = report.recolour_share
        switch_to = recolour_blind_model(library, share)  # tune does it; a server does not
        note = recolour_note(share, library.model_name, library.embedder.sees_colour, switch_to, report.recolours_counted)  # fmt: skip
        if note:
            log.info(note)
        return True

    def _save_loop(self, every: float) -> None:
        while not self._closing.wait(every):
            try:
                self.save_if_dirty()
                self.learn_ranking_if_due()
            except Exception:  # never let the saver thread die; the next round tries again
                log.exception("saving the index or learning the ranking failed")

    def close(self) -> None:
        self._closing.set()
        self.save_if_dirty()
        close_index = getattr(self.index._index, "close", None)
        if close_index is not None:
            close_index()
