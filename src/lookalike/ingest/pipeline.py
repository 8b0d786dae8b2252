"""The indexing pipeline: sources -> read + hash + decode (worker processes) -> embed (batches)
-> catalog + index.

    main process                         worker processes (workers.py, prepare.py)
    ------------                         -----------------------------------------
    scan sources; skip places whose      read bytes, sha256; if the catalog already has
    size+mtime are unchanged; open       those bytes done, stop here; else decode and
    archives, hand out their members --> preprocess into the model's input array
    record image + place rows       <--
    every `batch_size` inputs: embed, store vectors, COMMIT, add to the in-memory index
    every `save_every` seconds and at the end: save the index, mark rows indexed
    at the end: record the archives read, forget members and files that are gone, delete
    images no place points at any more

The scan and the end of a run (the first and last lines of the main side) are scanning.py's.

Crash safety comes from the order of writes (see Library.save_index): a kill -9 at any point
leaves committed rows whose status says what is left to do, and the next run (or any open of
the library) finishes it. Ctrl-C stops cleanly: it commits, saves the index, then exits.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from lookalike.catalog import VECTOR_STATUSES, Place, as_stored
from lookalike.library import Library
from lookalike.pictures import DEFAULT_MAX_PIXELS
from lookalike.sources import (
    ArchiveLimits,
    Downloader,
    Fetcher,
    FetchPolicy,
    FolderSource,
    Source,
    UrlSource,
    is_url,
)

from .interrupts import StopOnInterrupt
from .scanning import ArchiveRead, Scanning
from .workers import DecodeOutcome, DecodePool

SAVE_EVERY_SECONDS = 300.0


@dataclass
class IndexReport:
    found: int = 0  # candidate images seen in the sources (archive members included)
    unchanged: int = 0  # skipped by size + mtime (an unchanged archive counts once)
    archives: int = 0  # archives opened
    added: int = 0  # new images embedded
    known: int = 0  # new places whose bytes the library already had
    failed: int = 0  # unreadable or undecodable (recorded in the catalog)
    removed: int = 0  # images dropped: their files changed or vanished
    tiles: int = 0  # sprites found in sheets (with --tiles), each its own catalog image
    interrupted: bool = False
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (place, message), first few

    @property
    def processed(self) -> int:
        return self.added + self.known + self.failed


# -- main side ------------------------------------------------------------------------------------


class Indexer(Scanning):
    def __init__(
        self,
        library: Library,
        *,
        workers: int | None = None,
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        retry_failed: bool = False,
        save_every: float = SAVE_EVERY_SECONDS,
        progress: bool | None = None,
        archive_limits: ArchiveLimits | None = None,
        tiles: bool = False,
    ):
        self.library = library
        self.tiles = tiles  # also index the sprites of sprite sheets (pictures/tiles.py)
        self.catalog = library.catalog
        self.workers = workers or os.cpu_count() or 1
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.retry_failed = retry_failed
        self.save_every = save_every
        self.progress = progress
        self.archive_limits = archive_limits or ArchiveLimits()
        self.report = IndexReport()
        self._archives: list[ArchiveRead] = []
        self._batch_ids: list[int] = []
        self._batch_pixels: list[np.ndarray] = []
        self._in_tx = False
        self._last_save = time.monotonic()
        self._stop = StopOnInterrupt()

    # -- public ---------------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once Ctrl-C asked the run to stop (sources that fetch should stop too)."""
        return self._stop.requested

    def run(self, sources: Iterable[Source], *, prune: bool = False) -> IndexReport:
        started = time.monotonic()
        embedder = self.library.embedder
        _ = self.library.index  # load and reconcile it before we start adding
        # progress=None: a bar on a terminal, none in logs and pipes (tqdm's disable=None).
        bar = tqdm(
            total=0,
            unit="img",
            desc="indexing",
            disable=None if self.progress is None else not self.progress,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        sources = list(sources)
        failing = False
        try:
            with StopOnInterrupt() as stop:
                self._stop = stop
                pool = DecodePool(
                    self.workers,
                    str(self.catalog.path),
                    embedder.preprocessor(),
                    self.max_pixels,
                    self.retry_failed,
                    self.tiles,
                )

                def on_outcome(outcome: DecodeOutcome) -> None:
                    self._record(outcome)
                    bar.update(1)
                    if bar.n % 64 == 0:
                        bar.set_postfix(new=self.report.added, failed=self.report.failed)

                pool.run(self._work_chunks(sources, bar), on_outcome, lambda: stop.requested)
                self._flush()  # what was decoded is embedded, even when stopping early
                if stop.requested:
                    self.report.interrupted = True
                else:
                    self._finish_archives()
                    self._remove_stale(sources if prune else [])
        except KeyboardInterrupt:  # a second Ctrl-C: stop now; rows left 'decoded' are redone
            self.report.interrupted = True
        except BaseException:
            failing = True
            raise
        finally:
            bar.close()
            self._save(failing)
            self.report.seconds = time.monotonic() - started
        return self.report

    def _save(self, failing: bool) -> None:
        """Commit and save the index at the end of a run, also a failing one. When the run is
        already failing (a full disk, say), an error here is not the one to report: what was
        committed stays, and the next open of the library catches the index up."""
        try:
            self._commit()
            self.library.save_index()
        except Exception:
            if not failing:
                raise
            self.catalog.rollback()

    # -- recording results ------------------------------------------------------------------------

    def _record(self, outcome: DecodeOutcome) -> None:
        if outcome.sha256 is None:  # could not even read it: nothing to key a row on
            self._note_error(outcome.place, outcome.error or "unreadable")
            return
        self._begin()
        existing = self.catalog.image_by_sha(outcome.sha256)
        done_before = existing and (
            existing[1] in VECTOR_STATUSES or existing[0] in self._batch_ids
        )
        if outcome.known or done_before:
            image_id = existing[0] if existing else None
            if image_id is None:  # known to the worker, deleted since: treat as failed read
                self._note_error(outcome.place, "image vanished from the catalog during the run")
                return
            self.report.known += 1
        else:
            image_id = self.catalog.put_image(outcome.image)  # 'decoded', or 'failed'
            if outcome.error is not None:
                self._note_error(outcome.place, outcome.error)
            else:
                self._batch_ids.append(image_id)
                self._batch_pixels.append(outcome.pixels)
                self.report.added += 1
        self.catalog.put_place(image_id, outcome.place, outcome.size, outcome.mtime_ns)
        if outcome.tiles:
            self._record_tiles(outcome)
        if len(self._batch_ids) >= self.batch_size:
            self._flush()

    def _record_tiles(self, outcome: DecodeOutcome) -> None:
        """One image per sprite of a sheet, placed at the sheet's place plus its box. The
        sprites a changed sheet no longer has lose their places here, and their images go
        with the other orphans at the end of the run."""
        place = outcome.place
        self.catalog.delete_tile_places(place.source, place.member)
        for tile in outcome.tiles:
            existing = self.catalog.image_by_sha(tile.image.sha256)
            if existing and (existing[1] in VECTOR_STATUSES or existing[0] in self._batch_ids):
                tile_id = existing[0]
            else:
                tile_id = self.catalog.put_image(tile.image)
                self._batch_ids.append(tile_id)
                self._batch_pixels.append(tile.pixels)
            tile_place = dataclasses.replace(place, member=tile.box.as_member(place.member))
            self.catalog.put_place(tile_id, tile_place, outcome.size, outcome.mtime_ns)
        self.report.tiles += len(outcome.tiles)

    def _note_error(self, place: Place, message: str) -> None:
        self.report.failed += 1
        if len(self.report.errors) < 20:
            self.report.errors.append((place.display, message))

    def _flush(self) -> None:
        """Embed the pending batch, store its vectors and commit everything recorded so far."""
        ids, pixels = self._batch_ids, self._batch_pixels
        # Taken off first: if a Ctrl-C lands mid-way, the rows stay 'decoded' and the next run
        # redoes them, rather than this batch being added to the index twice.
        self._batch_ids, self._batch_pixels = [], []
        if ids:
            embedder = self.library.embedder
            vectors, details = embedder.embed_with_details(np.stack(pixels))
            # The index gets exactly what the catalog stores (float16), so that a rebuild from
            # the catalog gives the same scores as the live index.
            vectors = as_stored(vectors)
            self.catalog.store_vectors(ids, vectors, embedder.model_id, details)
            self._commit()
            self.library.add_to_index(np.array(ids, dtype=np.int64), vectors)
        self._commit()
        if time.monotonic() - self._last_save > self.save_every:
            self.library.save_index()
            self._last_save = time.monotonic()

    # One transaction spans the records of a batch, so it is opened and closed here rather
    # than in a `with catalog.transaction()` block.

    def _begin(self) -> None:
        if not self._in_tx:
            self.catalog.begin()
            self._in_tx = True

    def _commit(self) -> None:
        if self._in_tx:
            self._in_tx = False  # first: SQLite itself rolls back a COMMIT that hits a full disk
            self.catalog.commit()


def index_paths(
    library: Library,
    targets: Iterable[os.PathLike | str],
    *,
    prune: bool = False,
    fetch_policy: FetchPolicy | None = None,
    concurrency: int = 4,
    **indexer_options,
) -> IndexReport:
    """Index folders, files and http(s) URLs (the `lookalike index` command)."""
    indexer = Indexer(library, **indexer_options)
    paths = [t for t in targets if not is_url(str(t))]
    urls = [str(t) for t in targets if is_url(str(t))]
    sources: list[Source] = [FolderSource(p, exclude=(library.root,)) for p in paths]
    fetcher = None
    if urls:
        fetcher = Fetcher(fetch_policy or FetchPolicy())
        downloader = Downloader(
            library.catalog, fetcher, library.downloads_dir, concurrency=concurrency
        )
        sources.append(UrlSource(urls, downloader, should_stop=lambda: indexer.stop_requested))
    try:
        return indexer.run(sources, prune=prune)
    finally:
        if fetcher is not None:
            fetcher.close()
