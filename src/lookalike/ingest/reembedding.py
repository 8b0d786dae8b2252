"""`lookalike reindex --model NAME`: re-embed every image of a library with another model.

The catalog keeps places, not copies, so the originals are read again from where they were
found (`sources/locate.py`): files on disk, archive members (each archive read once for all its
members), and the download cache for URLs and crawls (originals.py). Nothing is fetched from
the network.

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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lookalike.catalog import (
    ImageRecord,
    ModelChooser,
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
    tiny_picture,
)
from lookalike.sources import ImageGone

from .interrupts import StopOnInterrupt
from .originals import (
    READ_CHUNK,
    OriginalReader,
    in_archive_order,
    progress_bar,
    read_decoded,
    read_originals,
    record_chunks,
)


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
    _check_reembeddable(library)
    started = time.monotonic()
    embedder = _new_embedder(library, model, weights, embedder)
    report = ReembedReport(embedder.model_id)
    todo = _left_to_stage(library.catalog, embedder.model_id, report)
    bar = progress_bar(len(todo), f"re-embedding ({model})", progress)
    _stage_all(
        library, embedder, todo, report, bar,
        batch_size=batch_size, max_pixels=max_pixels, should_stop=should_stop,
    )  # fmt: skip
    bar.close()
    report.seconds = time.monotonic() - started
    if report.interrupted or (report.unreadable and not drop_unreadable):
        return report
    _switch_over(library, model, embedder, report, chosen_by)
    report.seconds = time.monotonic() - started
    return report


def _check_reembeddable(library: Library) -> None:
    assert library.writable, "reindex --model needs a library opened for writing"
    if library.store.kind != "faiss":
        raise LibraryError(
            "reindex --model re-embeds libraries kept in FAISS; move this one there first "
            "(lookalike migrate --to faiss), re-embed, then migrate back"
        )


def _new_embedder(
    library: Library, model: str, weights: Path | None, embedder: Embedder | None
) -> Embedder:
    """The embedder to re-embed with (`embedder`, when the caller has one loaded), which must
    not be the one the library already uses."""
    embedder = embedder or create_embedder(model, weights=weights, cache_dir=library.models_dir)
    if library.catalog.get_meta("model_id") == embedder.model_id:
        raise LibraryError(f"the library already uses {embedder.model_id}; nothing to re-embed")
    return embedder


def _left_to_stage(catalog, model_id: str, report: ReembedReport) -> list[int]:
    """The ids with a vector that an earlier, interrupted run has not staged yet, in reading
    order (see in_archive_order); counts them all, and those already staged, in `report`."""
    all_ids = catalog.vector_ids()
    done = staged_ids(catalog, model_id)
    todo = in_archive_order(catalog, np.setdiff1d(all_ids, done))
    report.total, report.already = len(all_ids), len(np.intersect1d(all_ids, done))
    return todo


def _stage_all(
    library: Library,
    embedder: Embedder,
    todo: list[int],
    report: ReembedReport,
    bar: tqdm,
    *,
    batch_size: int,
    max_pixels: int,
    should_stop: Callable[[], bool] | None,
) -> None:
    """Embed and stage `todo` a batch at a time, until all are staged or a stop is asked for
    (`should_stop`, or else Ctrl-C), which `report` then says."""
    catalog = library.catalog
    reader = OriginalReader(library)
    prep = embedder.preprocessor()
    decode = dict(
        max_pixels=max_pixels, min_size=getattr(prep, "size", None), keep_alpha=wants_alpha(prep),
        palette=True,
    )  # fmt: skip
    with StopOnInterrupt() as stop:
        stopping = should_stop or (lambda: stop.requested)
        for records, wanted in record_chunks(catalog, todo):
            reader.start_chunk()
            for start in range(0, len(records), batch_size):
                if stopping():
                    report.interrupted = True
                    return
                batch = records[start : start + batch_size]
                decoded = _decode_batch(reader, batch, wanted, decode, report)
                _stage_batch(catalog, embedder, prep, decoded, report)
                bar.update(len(batch))


def _decode_batch(reader: OriginalReader, batch: list[ImageRecord], wanted, decode: dict, report):
    """(id, DecodedImage) for each image of `batch` whose original can be read, as it is read;
    those that cannot go to `report.unreadable` as (id, why)."""
    for record in batch:
        try:
            decoded = decode_image(reader.read(record, wanted), **decode)
        except (ImageGone, DecodeError) as exc:
            report.unreadable.append((record.id, str(exc)))
            continue
        yield record.id, decoded


def _stage_batch(catalog, embedder: Embedder, prep, decoded, report: ReembedReport) -> None:
    """Embed the images of `decoded` and stage their vectors, giving them the tiny pictures and
    palette keys they lack; one commit for the batch, so a stop loses one batch at most."""
    ids, pixels, tinies, palettes = [], [], [], []
    for image_id, image in decoded:
        ids.append(image_id)
        pixels.append(prep(image.image))
        tinies.append(tiny_picture(image.image))
        palettes.append(image.palette_key)
    if not ids:
        return
    vectors, details = embedder.embed_with_details(np.stack(pixels))
    with catalog.transaction():
        stage_vectors(catalog, ids, vectors, embedder.model_id, details)
        for image_id, tiny, palette in zip(ids, tinies, palettes):
            catalog.fill_tiny(image_id, tiny)  # indexed before schema v6
            catalog.fill_palette_key(image_id, palette)  # before v8
    report.embedded += len(ids)


def _switch_over(
    library: Library,
    model: str,
    embedder: Embedder,
    report: ReembedReport,
    chosen_by: ModelChooser,
) -> None:
    """Swap the staged vectors in (leaving out the unreadable images), then build and save a
    fresh index from them."""
    catalog = library.catalog
    swap_in_staged(catalog, model, embedder.model_id, embedder.dim, report.unreadable, chosen_by)
    report.swapped = True
    library.set_embedder(embedder)
    library.rebuild_index(save=True)


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
