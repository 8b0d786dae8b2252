"""`lookalike reindex --model NAME`: re-embed every image of a library with another model.

The catalog keeps places, not copies, so the originals are read again from where they were
found (`sources/locate.py`): files on disk, archive members (each archive read once for all its
members), and the download cache for URLs and crawls. Nothing is fetched from the network.

    for each batch of images:  read the original -> check its sha256 -> decode -> embed with
                               the new model -> stage the vectors (catalog/staging.py), COMMIT
    once all are staged:       one transaction swaps vectors, model and dim
    then:                      a fresh index is built from the new vectors and saved

Until the swap, search keeps using the old vectors and the old index, so a Ctrl-C, a kill or
a crash leaves the library as it was; running the command again embeds only what is not staged.
Images whose original cannot be read any more stop the swap, unless `drop_unreadable` says to
leave them out (they are then marked failed, with the reason).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lookalike.catalog import (
    DownloadLog,
    ImageRecord,
    ModelChooser,
    Place,
    stage_vectors,
    staged_ids,
    swap_in_staged,
)
from lookalike.embed import Embedder, create_embedder, wants_alpha
from lookalike.library import Library, LibraryError
from lookalike.pictures import (
    DEFAULT_MAX_PIXELS,
    TINY_LENGTH,
    DecodeError,
    decode_image,
    split_member,
    tiny_picture,
)
from lookalike.sources import ArchiveError, ImageGone, MemoryItem, read_archive, read_image_bytes

from .interrupts import StopOnInterrupt


@dataclass
class ReembedReport:
    model_id: str
    total: int = 0  # images with a vector when the run started
    already: int = 0  # staged by an earlier, interrupted run
    embedded: int = 0  # embedded by this run
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (id, why)
    swapped: bool = False  # the library now uses the new model
    interrupted: bool = False
    seconds: float = 0.0


READ_CHUNK = 256  # images read together: an archive is opened once per chunk, not per member


class OriginalReader:
    """An image's bytes from its places. The members a chunk wants from an archive are taken
    from one reading of it (work is ordered by archive), so re-embedding a 10,000-member zip
    opens it about 40 times, not 10,000."""

    def __init__(self, library: Library):
        self.downloads = DownloadLog(library.catalog)
        self.downloads_dir = library.downloads_dir
        self._archive: str | None = None
        self._members: dict[str, bytes] = {}

    def start_chunk(self) -> None:
        self._archive, self._members = None, {}

    def read(self, record: ImageRecord, wanted_members: set[tuple[str, str]]) -> bytes:
        for place in record.places:
            if (
                place.member
                and (place.source, place.member) in wanted_members
                and not (
                    split_member(place.member)[1]  # a sprite: cropped from its sheet, below
                )
            ):
                data = self._member(place, wanted_members)
                if data is not None and hashlib.sha256(data).hexdigest() == record.sha256:
                    return data
        # files, the download cache, and what the fast path missed (it says why it fails)
        return read_image_bytes(record, self.downloads, self.downloads_dir)

    def _member(self, place: Place, wanted: set[tuple[str, str]]) -> bytes | None:
        if place.source != self._archive:
            self._archive, self._members = place.source, {}
            try:
                path = place.source
                if path.startswith(("http://", "https://")):
                    cached = self.downloads.cached_path(path)
                    if cached is None:
                        return None
                    path = str(self.downloads_dir / cached)
                for item in read_archive(path, Place(place.source)):
                    if isinstance(item, MemoryItem) and (place.source, item.place.member) in wanted:
                        self._members[item.place.member] = item.data
            except (OSError, ArchiveError, LookupError):
                return None  # the slow path below says what is wrong
        return self._members.pop(place.member, None)


def reembed(
    library: Library,
    model: str,
    *,
    weights: Path | None = None,
    batch_size: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    drop_unreadable: bool = False,
    progress: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    embedder: Embedder | None = None,
    chosen_by: ModelChooser = "user",
) -> ReembedReport:
    """Re-embed the library with `model`, then switch it over (see the module's doc).
    `chosen_by`: who chose the model, 'user' or 'tune' (Library.model_chosen_by)."""
    assert library.writable, "reindex --model needs a library opened for writing"
    if library.store.kind != "faiss":
        raise LibraryError(
            "reindex --model re-embeds libraries kept in FAISS; move this one there first "
            "(lookalike migrate --to faiss), re-embed, then migrate back"
        )
    started = time.monotonic()
    embedder = embedder or create_embedder(model, weights=weights, cache_dir=library.models_dir)
    catalog = library.catalog
    if catalog.get_meta("model_id") == embedder.model_id:
        raise LibraryError(f"the library already uses {embedder.model_id}; nothing to re-embed")
    report = ReembedReport(embedder.model_id)
    all_ids = catalog.vector_ids()
    done = staged_ids(catalog, embedder.model_id)
    todo = _by_archive(catalog, np.setdiff1d(all_ids, done))
    report.total, report.already = len(all_ids), len(np.intersect1d(all_ids, done))
    reader = OriginalReader(library)
    prep = embedder.preprocessor()
    min_size = getattr(prep, "size", None)
    alpha = wants_alpha(prep)
    bar = progress_bar(len(todo), f"re-embedding ({model})", progress)
    with StopOnInterrupt() as stop:
        stopping = should_stop or (lambda: stop.requested)
        for records, wanted in _chunks(catalog, todo):
            reader.start_chunk()
            for start in range(0, len(records), batch_size):
                if stopping():
                    report.interrupted = True
                    break
                batch = records[start : start + batch_size]
                ids, pixels, tinies, palettes = [], [], [], []
                for record in batch:
                    try:
                        data = reader.read(record, wanted)
                        decoded = decode_image(
                            data, max_pixels=max_pixels, min_size=min_size, keep_alpha=alpha,
                            palette=True,
                        )  # fmt: skip
                    except (ImageGone, DecodeError) as exc:
                        report.unreadable.append((record.id, str(exc)))
                        continue
                    ids.append(record.id)
                    pixels.append(prep(decoded.image))
                    tinies.append(tiny_picture(decoded.image))
                    palettes.append(decoded.palette_key)
                if ids:
                    vectors, details = embedder.embed_with_details(np.stack(pixels))
                    with catalog.transaction():  # one commit per batch: a stop loses one
                        stage_vectors(catalog, ids, vectors, embedder.model_id, details)
                        for image_id, tiny, palette in zip(ids, tinies, palettes):
                            catalog.fill_tiny(image_id, tiny)  # indexed before schema v6
                            catalog.fill_palette_key(image_id, palette)  # before v8
                    report.embedded += len(ids)
                bar.update(len(batch))
            if report.interrupted:
                break
    bar.close()
    report.seconds = time.monotonic() - started
    if report.interrupted or (report.unreadable and not drop_unreadable):
        return report
    swap_in_staged(catalog, model, embedder.model_id, embedder.dim, report.unreadable, chosen_by)
    report.swapped = True
    library.set_embedder(embedder)
    library.rebuild_index(save=True)
    report.seconds = time.monotonic() - started
    return report


def fill_tiny_pictures(
    library: Library, *, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool | None = None
) -> tuple[int, list[tuple[int, str]]]:
    """Give the searchable images that lack a tiny picture (index/tiny.py: indexed before
    schema v6, or the row was damaged) theirs, reading their originals again as `reindex
    --model` does. Returns (images filled, [(id, why unreadable)]); a commit per READ_CHUNK."""
    catalog = library.catalog
    unreadable: list[tuple[int, str]] = []
    ids = catalog.ids_lacking_tiny(TINY_LENGTH)
    read = read_originals(library, ids, unreadable, "making tiny pictures", progress, max_pixels=max_pixels)  # fmt: skip
    made = ((image_id, tiny_picture(image)) for image_id, image in read)
    return _write_in_chunks(catalog, made, catalog.fill_tiny), unreadable


def _write_in_chunks(catalog, found, write) -> int:
    """write(id, value) for each of `found`, a transaction per READ_CHUNK, so that work read
    from the originals survives an interruption; returns how many were written."""
    done, chunk = 0, []
    for item in found:
        chunk.append(item)
        if len(chunk) == READ_CHUNK:
            with catalog.transaction():
                for image_id, value in chunk:
                    write(image_id, value)
            done, chunk = done + len(chunk), []
    with catalog.transaction():
        for image_id, value in chunk:
            write(image_id, value)
    return done + len(chunk)


def fill_details(
    library: Library,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int = 16,
    progress: bool | None = None,
) -> tuple[int, list[tuple[int, str]]]:
    """Give the images whose details are missing or damaged (catalog.ids_lacking_details;
    `check --repair` drops damaged ones) theirs, reading their originals again and embedding
    them with the library's model; their vectors stay as they are. Returns (images filled,
    [(id, why unreadable)]); a commit per batch. A model without details: nothing to do."""
    embedder = library.embedder
    unreadable: list[tuple[int, str]] = []
    filled = 0
    if not embedder.detail_dim:
        return filled, unreadable
    catalog = library.catalog
    prep = embedder.preprocessor()
    ids: list[int] = []
    pixels: list[np.ndarray] = []

    def save() -> None:
        nonlocal filled
        if ids:
            _, details = embedder.embed_with_details(np.stack(pixels))
            with catalog.transaction():
                catalog.fill_details(ids, details)
            filled += len(ids)
        ids.clear()
        pixels.clear()

    lacking = catalog.ids_lacking_details(embedder.detail_dim)
    read = dict(min_size=getattr(prep, "size", None), keep_alpha=wants_alpha(prep))
    for image_id, image in read_originals(library, lacking, unreadable, "making details", progress, max_pixels=max_pixels, **read):  # fmt: skip
        ids.append(image_id)
        pixels.append(prep(image))
        if len(ids) == batch_size:
            save()
    save()
    return filled, unreadable


def read_originals(
    library: Library, ids: list[int], unreadable: list, desc: str, progress, **decode
):
    """(id, decoded original) for each of `ids` that can be read, in an order that reads each
    archive once a chunk; those that cannot go to `unreadable` as (id, why)."""
    for image_id, decoded in read_decoded(library, ids, unreadable, desc, progress, **decode):
        yield image_id, decoded.image


def read_decoded(library: Library, ids: list[int], unreadable: list, desc: str, progress, **decode):
    """read_originals, with all that decode_image found (DecodedImage): its pixel hash too."""
    catalog = library.catalog
    todo = _by_archive(catalog, np.array(ids, dtype=np.int64))
    reader = OriginalReader(library)
    bar = progress_bar(len(todo), desc, progress)
    for records, wanted in _chunks(catalog, todo):
        reader.start_chunk()
        for record in records:
            bar.update(1)
            try:
                decoded = decode_image(reader.read(record, wanted), **decode)
            except (ImageGone, DecodeError) as exc:
                unreadable.append((record.id, str(exc)))
                continue
            yield record.id, decoded
    bar.close()


def fill_pixel_hashes(
    library: Library, *, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool | None = None
) -> tuple[int, list[tuple[int, str]]]:
    """Hash again the pixels of the images indexed before schema v9, whose hash may be of how
    their pixels were stored (a palette and its indices) rather than of the colours shown
    (decode.pixel_hash), reading their originals; then forget that any were. Those that cannot
    be read lose theirs, as an old hash trusted alone could make a palette swap exact: they
    match exactly only a copy of the same bytes.
    Returns (images hashed again, [(id, why unreadable)]); a commit per READ_CHUNK."""
    catalog = library.catalog
    unreadable: list[tuple[int, str]] = []
    ids = catalog.ids_with_stored_form_pixel_hashes()
    read = read_decoded(library, ids, unreadable, "hashing pixels again", progress, max_pixels=max_pixels)  # fmt: skip
    hashed = ((i, decoded.pixel_hash) for i, decoded in read if decoded.pixel_hash is not None)
    done = _write_in_chunks(catalog, hashed, catalog.set_pixel_hash)
    with catalog.transaction():
        for image_id, _ in unreadable:
            catalog.set_pixel_hash(image_id, None)
        catalog.forget_stored_form_pixel_hashes()
    return done, unreadable


def progress_bar(total: int, desc: str, progress: bool | None) -> tqdm:
    """A bar over images; `progress` None: shown on a terminal only."""
    disable = None if progress is None else not progress
    return tqdm(total=total, unit="img", desc=desc, disable=disable, dynamic_ncols=True)


def _chunks(catalog, todo: list[int]):
    """(records, archive members they want) for READ_CHUNK ids of `todo` at a time."""
    for start in range(0, len(todo), READ_CHUNK):
        chunk = catalog.images(todo[start : start + READ_CHUNK])
        records = [chunk[i] for i in todo[start : start + READ_CHUNK] if i in chunk]
        yield records, {(p.source, p.member) for r in records for p in r.places if p.member}


def _by_archive(catalog, ids: np.ndarray) -> list[int]:
    """`ids` with the archive members last, grouped by archive in member order, so that each
    chunk of work needs few archives (see OriginalReader)."""
    key = catalog.archive_order()
    return sorted((int(i) for i in ids), key=lambda i: (i in key, key.get(i, ""), i))
