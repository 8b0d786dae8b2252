"""Decoding worker processes: read, hash, decode and preprocess images off the main process.

The main process hands out small lists of `SourceItem`s; each worker reads the bytes, hashes
them, asks the catalog (read-only) whether those bytes are already done, and only then decodes
and preprocesses. What comes back is a `DecodeOutcome`: the model input array, or the error,
with the item's place, never the bytes themselves.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from .catalog.records import Place
from .decode import DecodeError, decode_image
from .embed.base import Preprocessor, preprocess, wants_alpha
from .index.tiny import tiny_picture
from .recolours import palette_signature
from .sources.base import SourceError, SourceItem
from .tiles import Box, find_tiles, tile_sha256

TASKS_IN_FLIGHT_PER_WORKER = 4


@dataclass(frozen=True)
class DecodeOutcome:
    place: Place
    size: int | None  # of the file, as the source reported it (for skipping it next time)
    mtime_ns: int | None
    sha256: str | None = None  # None: the bytes could not even be read
    byte_size: int = 0
    known: bool = False  # the catalog already has these bytes, done
    pixels: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    frames: int | None = None
    pixel_hash: str | None = None
    palette_key: str | None = None  # recolours.palette_signature
    tiny: bytes | None = None  # its tiny picture (index/tiny.py)
    error: str | None = None
    # with --tiles, the sprites of a sheet: (box, identity, model input, tiny picture,
    # palette key) each
    tiles: tuple[tuple[Box, str, np.ndarray, bytes, str], ...] = ()


class DecodePool:
    """A process pool with a bounded number of tasks in flight, fed lazily from a generator."""

    def __init__(
        self,
        workers: int,
        catalog_path: str,
        preprocess: Preprocessor,
        max_pixels: int,
        retry_failed: bool,
        tiles: bool = False,
    ):
        self.workers = workers
        self._initargs = (catalog_path, preprocess, max_pixels, retry_failed, tiles, os.getpid())

    def run(
        self,
        chunks: Iterator[list[SourceItem]],
        on_outcome: Callable[[DecodeOutcome], None],
        should_stop: Callable[[], bool],
    ) -> None:
        """Decode every item of every chunk, calling `on_outcome` in the calling thread."""
        first = next(chunks, None)
        if first is None:
            return  # nothing to do: don't pay for starting workers
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=get_context("spawn"),  # onnxruntime's threads make fork unsafe
            initializer=_worker_init,
            initargs=self._initargs,
        )
        max_in_flight = self.workers * TASKS_IN_FLIGHT_PER_WORKER
        pending = {pool.submit(_process_items, first)}
        exhausted = False
        try:
            while True:
                if should_stop():
                    exhausted = True  # submit nothing more; record what is already under way
                while not exhausted and len(pending) < max_in_flight:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.add(pool.submit(_process_items, chunk))
                if not pending:  # only once the scan is exhausted: workers can drain the
                    break  # queue while we are busy embedding, leaving nothing pending
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    for outcome in future.result():
                        on_outcome(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# -- in the worker processes ------------------------------------------------------------------

_worker: dict = {}


def _worker_init(
    catalog_path: str,
    preprocess: Preprocessor,
    max_pixels: int,
    retry: bool,
    tiles: bool,
    parent: int,
):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides how to stop
    # Decoding gets the CPU only when the model (main process) does not need it: the batches
    # keep flowing, and measured 6% more images/s on 2 cores.
    os.nice(5)
    _keep_freed_memory()
    _exit_with_parent(parent)
    conn = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=30)
    _worker.update(
        conn=conn, preprocess=preprocess, max_pixels=max_pixels, retry=retry, tiles=tiles
    )


def _exit_with_parent(parent: int, poll_seconds: float = 0.5) -> None:
    """Exit when the main process `parent` is gone. A kill -9 of `lookalike index` otherwise
    leaves its workers blocked on their task queue for ever (seen: orphans adopted by init).
    The pid comes from the parent itself: it may have died while this worker was starting."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for the next picture rather than give it back to the OS
    after each one. Decoding a sprite sheet allocates ~9 MB; returning it every time cost 2,200
    page faults per image: measured 11.7 -> 8.9 ms per sheet. A no-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: heap, not mmap, below 64 MB
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of free heap
    except (OSError, AttributeError):
        pass


def _process_items(items: list[SourceItem]) -> list[DecodeOutcome]:
    return [_process_one(item) for item in items]


def _process_one(item: SourceItem) -> DecodeOutcome:
    where = {"place": item.place, "size": item.size, "mtime_ns": item.mtime_ns}
    try:
        data = item.read()
    except SourceError as exc:
        return DecodeOutcome(**where, error=f"read: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    row = _worker["conn"].execute("SELECT status FROM images WHERE sha256 = ?", (sha,)).fetchone()
    if row and (row[0] in ("embedded", "indexed") or (row[0] == "failed" and not _worker["retry"])):
        return DecodeOutcome(**where, sha256=sha, byte_size=len(data), known=True)
    prep = _worker["preprocess"]
    tiles: tuple = ()
    try:
        if _worker["tiles"]:  # full size, alpha kept: the sprites are found in it
            decoded = decode_image(
                data, max_pixels=_worker["max_pixels"], keep_alpha=True, palette=True
            )
            crops = [(box, box.crop(decoded.image)) for box in find_tiles(decoded.image)]
            tiles = tuple(
                (
                    box,
                    tile_sha256(crop),
                    preprocess(prep, crop),
                    tiny_picture(crop),
                    palette_signature(crop),
                )
                for box, crop in crops
            )
            pixels = preprocess(prep, decoded.image)
        else:
            decoded = decode_image(
                data,
                max_pixels=_worker["max_pixels"],
                min_size=getattr(prep, "size", None),
                keep_alpha=wants_alpha(prep),
                palette=True,
            )
            pixels = prep(decoded.image)
    except DecodeError as exc:
        return DecodeOutcome(**where, sha256=sha, byte_size=len(data), error=f"decode: {exc}")
    return DecodeOutcome(
        **where,
        sha256=sha,
        byte_size=len(data),
        pixels=pixels,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        frames=decoded.frames,
        pixel_hash=decoded.pixel_hash,
        palette_key=decoded.palette_key,
        tiny=tiny_picture(decoded.image),
        tiles=tiles,
    )
