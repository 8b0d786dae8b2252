"""`lookalike tune`: learn the library's whitening (index/whitening.py) from its own images.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from lookalike.catalog import Catalog
from lookalike.embed import preprocess
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
    variant_pairs: int = 0  # pairs of variants (variants.py) it learned to tell apart
    unreadable: int = 0
    seconds: float = 0.0
    # of the library's pictures (or, in a library indexed before palette keys were kept, of
    # the sampled ones), the share that are palette swaps of others (recolours.py)
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
    catalog = library.catalog
    embedder = library.embedder
    # Images and edits are drawn by content, not by id: ids follow the order in which the
    # decoding workers finished, so the same folder indexed twice would learn two rankings
    contents = catalog.vector_contents()
    digest = {i: hashlib.blake2b(f"{seed}:{sha}".encode(), digest_size=8).digest() for i, sha in contents}  # fmt: skip
    drawn = sorted(digest, key=digest.get)  # a uniform shuffle, the same for the same images
    chosen = sorted(drawn[:sample])
    sha_of = dict(contents)
    prep = embedder.preprocessor()
    min_size = getattr(prep, "size", None)
    report = TuneReport()
    ids: list[int] = []
    kept_pixels: dict[int, np.ndarray] = {}  # small pictures' own pixels, to find variants by
    pixels: list[list[np.ndarray]] = [[], []]  # per view
    view_vectors: list[list[np.ndarray]] = [[], []]  # per view; with details, side by side

    def embed_pending() -> None:
        for view, batch in enumerate(pixels):
            if batch:
                vectors, details = embedder.embed_with_details(np.stack(batch))
                if details is not None:
                    vectors = np.hstack([vectors, details])
                view_vectors[view].append(vectors)
                batch.clear()

    unreadable: list[tuple[int, str]] = []
    # from the palette keys decoding kept, when it did (`tune` has counted them already)
    share = library_share(catalog) if recolour_share is None else recolour_share
    recolours = RecolourCount() if share is None else None  # else among the pictures read
    for image_id, image in read_originals(library, chosen, unreadable, "learning the ranking", progress, max_pixels=max_pixels, min_size=min_size, keep_alpha=True):  # fmt: skip
        ids.append(image_id)
        own = variant_pixels(image)
        if own is not None:
            kept_pixels[image_id] = own
        if recolours is not None:
            recolours.add(image)
        rng = random.Random(f"{seed}:{sha_of[image_id]}")
        for view, edited in enumerate(edited_views(image, rng)):
            pixels[view].append(preprocess(prep, edited))  # onto grey, as indexing does
        if len(pixels[0]) >= BATCH:
            embed_pending()
    embed_pending()
    report.unreadable = len(unreadable)
    report.sampled = len(ids)
    if recolours is not None:
        share = recolours.share()
        report.recolours_counted = "sampled pictures"
    report.recolour_share = share
    if len(ids) < 2:
        report.seconds = time.monotonic() - started
        return report
    pool = np.array(sorted(drawn[:MAX_VECTORS]), dtype=np.int64)  # holds `chosen`
    # Details take part when most images have them (all do, in a library of one model but for
    # damaged rows that `check --repair` dropped); learned from those that have them
    detail_dim = embedder.detail_dim
    if detail_dim and catalog.detail_count(detail_dim) * 2 < len(contents):
        detail_dim = 0
    found, originals = _with_details(catalog, ids, detail_dim)
    order = {image_id: row for row, image_id in enumerate(ids)}
    rows = [order[int(i)] for i in found]  # less any image deleted meanwhile
    views = [(originals, np.concatenate(v)[rows, : originals.shape[1]]) for v in view_vectors]
    parts = [_with_details(catalog, pool[s : s + 5000], detail_dim) for s in range(0, len(pool), 5000)]  # fmt: skip
    pool_ids = np.concatenate([found for found, _ in parts])
    library_vectors = np.concatenate([vectors for _, vectors in parts])
    learn_from = dict(
        model_id=catalog.get_meta("model_id") or "",
        library_size=len(contents),
        detail_dim=detail_dim,
    )
    first = learn_whitening(library_vectors, views, **learn_from)
    # then again, with the library's own look-alikes under the first as one more pair of views
    mapped = first.map_whole(library_vectors)
    neighbours = neighbour_pairs(first, library_vectors, mapped=mapped)
    report.neighbour_pairs = len(neighbours[0])
    # and the variants among the pictures read (variants.py), to be told apart
    sizes = catalog.sizes(pool_ids)
    pairs = variant_pairs(
        mapped,
        [kept_pixels.get(i) for i in pool_ids.tolist()],
        [sizes.get(i) for i in pool_ids.tolist()],
    )
    variants = None
    if len(pairs) >= MIN_VARIANT_PAIRS:  # fewer would stretch a few axes (index/whitening.py)
        report.variant_pairs = len(pairs)
        i, j = np.array(pairs).T
        variants = library_vectors[i] - library_vectors[j]
    report.whitening = learn_whitening(
        library_vectors, [*views, neighbours], **learn_from, variants=variants
    )
    report.seconds = time.monotonic() - started
    return report


def _with_details(catalog: Catalog, ids, detail_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids found, their vectors with their details side by side when detail_dim: then only
    the ids that have sound details)."""
    found, vectors = catalog.vectors(ids)
    if not detail_dim:
        return found, vectors
    having, details = catalog.details(found, detail_dim)
    keep = np.isin(found, having)
    return having, np.hstack([vectors[keep], details])
