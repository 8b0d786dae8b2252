"""`lookalike tune`: learn the library's whitening (ranking/whitening.py) from its own images.

    sample up to SAMPLE images -> read each original again (as `reindex --model` does)
    -> two edited views of it -> embed them with the library's model
    -> learn the whitening from the library's vectors and those pairs -> whitening.npz

No labels are used, only the library's pictures, so it fits any collection; it is worth it
from a few hundred images on (fitted on 300 tango_icons it still gained +0.02 mAP@10), and
`lookalike index` runs it by itself once a library reaches MIN_IMAGES, and again each time the
library has doubled since (`due`), and so does `lookalike serve` for images added through the
API (server/service.py, with `learn`, which does not save). Images whose original cannot be
read are skipped: the sample only needs to be large, not complete. Images and their edits are
drawn by content (sha256), so the same images learn the same ranking however they were indexed.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from lookalike.catalog import Catalog
from lookalike.embed import Embedder, preprocess
from lookalike.ingest import ReembedReport, read_originals, reembed
from lookalike.library import Library, library_share
from lookalike.pictures import DEFAULT_MAX_PIXELS, RecolourCount
from lookalike.ranking import (
    MIN_VARIANT_PAIRS,
    Whitening,
    WhiteningError,
    learn_whitening,
    neighbour_pairs,
)

from .recolours import recolour_blind_model
from .variants import variant_pairs, variant_pixels

MIN_IMAGES = 500  # below this, a library is left unwhitened (plain cosine similarity)
SAMPLE = 2000  # images whose edited views are embedded: 4,000 embeddings (60 s for LPC sheets)
REFIT_GROWTH = 2.0  # learn again once the library holds this many times what it was learned on
# library vectors (with their details) the mean and axes come from: 320 MB of float32 with
# effnet-lite0's 4,016 numbers an image, twice that in float64 while learning
MAX_VECTORS = 20_000
BATCH = 32


@dataclass
class TuneReport:
    whitening: Whitening | None = None
    sampled: int = 0
    neighbour_pairs: int = 0  # pairs of look-alikes in the library it also learned from
    variant_pairs: int = 0  # pairs of variants (tuning/variants.py) it learned to tell apart
    unreadable: int = 0
    seconds: float = 0.0
    # of the library's pictures (or, in a library indexed before palette keys were kept, of
    # the sampled ones), the share that are palette swaps of others (tuning/recolours.py)
    recolour_share: float = 0.0
    recolours_counted: str = "library's pictures"  # or "sampled pictures"
    # the re-embedding with a model that ignores colour, when those were many (`tune`)
    switch: ReembedReport | None = None


def due(library: Library) -> bool:
    """Whether `lookalike index` should (re)learn the whitening now."""
    size = library.catalog.vector_count()
    if size < MIN_IMAGES:
        return False
    current = library.whitening
    return current is None or size >= current.library_size * REFIT_GROWTH


def learn_if_due(library: Library, *, progress: bool | None = None) -> TuneReport | None:
    """Learn the whitening when `due` says so (after indexing); None when it is not due."""
    return tune(library, progress=progress) if due(library) else None


def ranking_problem(path: Path, catalog: Catalog) -> str | None:
    """What is wrong with a library's learned ranking (`lookalike check`), or None."""
    if path.exists():
        try:
            learned_for = Whitening.load(path).model_id
        except WhiteningError as exc:
            return str(exc)
        if learned_for != catalog.get_meta("model_id"):
            return f"{path.name} was learned for {learned_for}"
    elif catalog.vector_count() >= MIN_IMAGES:
        return "no ranking learned (an interrupted `lookalike index`, or an older library)"
    return None


def edited_views(image: Image.Image, rng: random.Random) -> list[Image.Image]:
    """Two views of `image` that an image search should still call the same picture: one
    shrunk to 45-80%; one cropped to 80-95% of each side, shrunk to 60-100% and with its
    colour and brightness changed by up to 30% and 20%. No mirror or turn: a left arrow is
    not a right arrow."""
    views = []
    scale = rng.uniform(0.45, 0.8)
    resample = rng.choice([Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])  # fmt: skip
    views.append(image.resize(_scaled(image.size, scale), resample))
    w, h = image.size
    cw, ch = max(1, round(w * rng.uniform(0.8, 0.95))), max(1, round(h * rng.uniform(0.8, 0.95)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = image.crop((x, y, x + cw, y + ch))
    crop = crop.resize(_scaled(crop.size, rng.uniform(0.6, 1.0)), Image.Resampling.BILINEAR)
    alpha = crop.getchannel("A") if crop.mode == "RGBA" else None
    rgb = ImageEnhance.Color(crop.convert("RGB")).enhance(rng.uniform(0.7, 1.3))
    rgb = ImageEnhance.Brightness(rgb).enhance(rng.uniform(0.8, 1.2))
    if alpha is not None:
        rgb.putalpha(alpha)
    views.append(rgb)
    return views


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(4, round(size[0] * scale)), max(4, round(size[1] * scale))


def tune(library: Library, *, switch_model: bool = True, **options) -> TuneReport:
    """Learn the whitening (`learn`, with its keyword `options`) and save it; the library's
    searches use it from then on. Returns what was done; `whitening` is None when too few
    images could be read (the library keeps whatever it had).

    With `switch_model`, a library whose model nobody chose and whose pictures are mostly
    palette swaps of one another is first re-embedded with the model's recolour-blind sibling
    (`recolours.recolour_blind_model`); `switch` says how that went. When the re-embedding
    fails or is stopped, the library keeps its model and the ranking is learned for that."""
    assert library.writable, "tune needs a library opened for writing"
    share = library_share(library.catalog)
    target = recolour_blind_model(library, share) if switch_model and share is not None else None
    switch = None
    if target is not None:
        switch = reembed(
            library, target, max_pixels=options.get("max_pixels", DEFAULT_MAX_PIXELS),
            progress=options.get("progress"), chosen_by="tune",
        )  # fmt: skip
        if switch.interrupted:  # Ctrl-C: stop here; the next tune goes on re-embedding
            return TuneReport(recolour_share=share, switch=switch)
    report = learn(library, recolour_share=share, **options)
    if report.whitening is not None:
        library.set_whitening(report.whitening)
    report.switch = switch
    return report


def learn(
    library: Library,
    *,
    sample: int = SAMPLE,
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool | None = None,
    recolour_share: float | None = None,
) -> TuneReport:
    """Learn the whitening from `sample` of the library's images, without saving it: reads
    only, so a library open for reading will do (the web service learns while it goes on
    serving, then saves under its write lock). `recolour_share`: the library's, when the
    caller has counted it already (`recolours.library_share`)."""
    started = time.monotonic()
    draw = _Draw.of(library.catalog, seed, sample)
    report = TuneReport()
    unreadable: list[tuple[int, str]] = []
    # from the palette keys decoding kept, when it did (`tune` has counted them already)
    share = library_share(library.catalog) if recolour_share is None else recolour_share
    recolours = RecolourCount() if share is None else None  # else among the pictures read
    sampled = _read_sampled(library, draw, unreadable, recolours, max_pixels, progress)
    report.unreadable = len(unreadable)
    report.sampled = len(sampled.ids)
    if recolours is not None:
        share = recolours.share()
        report.recolours_counted = "sampled pictures"
    report.recolour_share = share
    if len(sampled.ids) >= 2:
        _learn_twice(library.catalog, _learning_set(library, draw, sampled), sampled, report)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class _Draw:
    """The images `learn` reads, and the edits it makes of each, drawn by content, not by
    id: ids follow the order in which the decoding workers finished, so the same folder
    indexed twice would learn two rankings."""

    seed: int
    contents: list[tuple[int, str]]  # (id, sha256) of every image with a vector
    drawn: list[int]  # their ids, shuffled
    chosen: list[int]  # the first `sample` of those, in id order
    sha_of: dict[int, str]

    @classmethod
    def of(cls, catalog: Catalog, seed: int, sample: int) -> _Draw:
        contents = catalog.vector_contents()
        digest = {i: hashlib.blake2b(f"{seed}:{sha}".encode(), digest_size=8).digest() for i, sha in contents}  # fmt: skip
        drawn = sorted(digest, key=digest.get)  # a uniform shuffle, the same for the same images
        return cls(seed, contents, drawn, sorted(drawn[:sample]), dict(contents))

    def edits(self, image_id: int) -> random.Random:
        """The generator of an image's edited views, seeded by its content."""
        return random.Random(f"{self.seed}:{self.sha_of[image_id]}")


@dataclass
class _Sampled:
    """What `learn` took from the pictures it read, in the order it read them."""

    ids: list[int] = field(default_factory=list)
    # small pictures' own pixels, to find variants by
    kept_pixels: dict[int, np.ndarray] = field(default_factory=dict)
    # per view: the edited views not yet embedded, and the vectors of those that are (with
    # details, side by side)
    pixels: list[list[np.ndarray]] = field(default_factory=lambda: [[], []])
    view_vectors: list[list[np.ndarray]] = field(default_factory=lambda: [[], []])

    def embed_pending(self, embedder: Embedder) -> None:
        """Embed the views not yet embedded, each view's as one batch."""
        for view, batch in enumerate(self.pixels):
            if batch:
                vectors, details = embedder.embed_with_details(np.stack(batch))
                if details is not None:
                    vectors = np.hstack([vectors, details])
                self.view_vectors[view].append(vectors)
                batch.clear()


def _read_sampled(
    library: Library,
    draw: _Draw,
    unreadable: list[tuple[int, str]],
    recolours: RecolourCount | None,
    max_pixels: int,
    progress: bool | None,
) -> _Sampled:
    """Read the chosen originals and embed two edited views of each, BATCH at a time;
    `unreadable` gets those that could not be read, `recolours` counts palette swaps."""
    prep = library.embedder.preprocessor()
    min_size = getattr(prep, "size", None)
    sampled = _Sampled()
    for image_id, image in read_originals(library, draw.chosen, unreadable, "learning the ranking", progress, max_pixels=max_pixels, min_size=min_size, keep_alpha=True):  # fmt: skip
        sampled.ids.append(image_id)
        own = variant_pixels(image)
        if own is not None:
            sampled.kept_pixels[image_id] = own
        if recolours is not None:
            recolours.add(image)
        for view, edited in enumerate(edited_views(image, draw.edits(image_id))):
            sampled.pixels[view].append(preprocess(prep, edited))  # onto grey, as indexing does
        if len(sampled.pixels[0]) >= BATCH:
            sampled.embed_pending(library.embedder)
    sampled.embed_pending(library.embedder)
    return sampled


@dataclass
class _LearningSet:
    """What learn_whitening is given: the library's vectors and the sampled pairs."""

    views: list[tuple[np.ndarray, np.ndarray]]  # per view: (originals, their edited views)
    pool_ids: np.ndarray  # the library images the mean and axes come from
    vectors: np.ndarray  # theirs, row for row (with details side by side when detail_dim)
    learn_from: dict  # learn_whitening's model_id, library_size and detail_dim


def _learning_set(library: Library, draw: _Draw, sampled: _Sampled) -> _LearningSet:
    catalog = library.catalog
    pool = np.array(sorted(draw.drawn[:MAX_VECTORS]), dtype=np.int64)  # holds `chosen`
    # Details take part when most images have them (all do, in a library of one model but for
    # damaged rows that `check --repair` dropped); learned from those that have them
    detail_dim = library.embedder.detail_dim
    if detail_dim and catalog.detail_count(detail_dim) * 2 < len(draw.contents):
        detail_dim = 0
    found, originals = _with_details(catalog, sampled.ids, detail_dim)
    order = {image_id: row for row, image_id in enumerate(sampled.ids)}
    rows = [order[int(i)] for i in found]  # less any image deleted meanwhile
    views = [(originals, np.concatenate(v)[rows, : originals.shape[1]]) for v in sampled.view_vectors]  # fmt: skip
    parts = [_with_details(catalog, pool[s : s + 5000], detail_dim) for s in range(0, len(pool), 5000)]  # fmt: skip
    return _LearningSet(
        views=views,
        pool_ids=np.concatenate([found for found, _ in parts]),
        vectors=np.concatenate([vectors for _, vectors in parts]),
        learn_from=dict(
            model_id=catalog.get_meta("model_id") or "",
            library_size=len(draw.contents),
            detail_dim=detail_dim,
        ),
    )


def _learn_twice(
    catalog: Catalog, learning: _LearningSet, sampled: _Sampled, report: TuneReport
) -> None:
    """Learn a first whitening from the edited views, then the report's from those, the
    library's look-alikes under the first and the variants among the pictures read."""
    library_vectors = learning.vectors
    first = learn_whitening(library_vectors, learning.views, **learning.learn_from)
    # then again, with the library's own look-alikes under the first as one more pair of views
    mapped = first.map_whole(library_vectors)
    neighbours = neighbour_pairs(first, library_vectors, mapped=mapped)
    report.neighbour_pairs = len(neighbours[0])
    # and the variants among the pictures read (tuning/variants.py), to be told apart
    pool_ids = learning.pool_ids.tolist()
    sizes = catalog.sizes(learning.pool_ids)
    pairs = variant_pairs(
        mapped,
        [sampled.kept_pixels.get(i) for i in pool_ids],
        [sizes.get(i) for i in pool_ids],
    )
    variants = None
    if len(pairs) >= MIN_VARIANT_PAIRS:  # fewer would stretch a few axes (ranking/whitening.py)
        report.variant_pairs = len(pairs)
        i, j = np.array(pairs).T
        variants = library_vectors[i] - library_vectors[j]
    report.whitening = learn_whitening(
        library_vectors, [*learning.views, neighbours], **learning.learn_from, variants=variants
    )


def _with_details(catalog: Catalog, ids, detail_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids found, their vectors with their details side by side when detail_dim: then only
    the ids that have sound details)."""
    found, vectors = catalog.vectors(ids)
    if not detail_dim:
        return found, vectors
    having, details = catalog.details(found, detail_dim)
    keep = np.isin(found, having)
    return having, np.hstack([vectors[keep], details])
