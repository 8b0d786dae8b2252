"""More copy candidates for verification of small pictures, found by tiny pictures
(index/tiny.py) rather than by the vector search."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lookalike.pictures import hue_turned, strip_frame, tiny_picture

from .verify import MIN_SIDE, small_picture

if TYPE_CHECKING:
    from lookalike.catalog import ImageRecord
    from lookalike.library import Library

    from .query import QueryVector

TINY_DEPTH = 10  # candidates added to a verified search; most of the gain is in the first 5
CROP_DEPTH = 5  # and candidates the query may be a crop of (search_within)
OFFSET_DEPTH = 3  # and more found only off the cells' edges (PHASES)
HUE_DEPTH = 3  # and candidates found with the query's hue turned back (pictures/tiny.hue_turned)


def tiny_candidates(
    library: Library,
    query: QueryVector,
    known: set[int],
    *,
    exclude: int | None = None,
    allowed: np.ndarray | None = None,
) -> dict[int, ImageRecord]:
    """More candidates for verification by pixels, found by tiny pictures (index/tiny.py),
    less those in `known`, kept where either side is under MIN_SIDE (larger pairs are the
    vector search's and the keypoints' business), best first, with their records: the images
    whose tiny pictures correlate best with the query's, or with the picture inside its frame
    if it has one (a border added), then those a small query may be a crop of. These are
    copies the vector search ranks low: a 16 px icon shrunk to 6 px or saved as JPEG at
    quality 10, half a 32 px tile (docs/quality.md)."""
    catalog, pictures = library.catalog, []
    if query.image is not None:
        size = query.image.size
        query_small = min(size) < MIN_SIDE
        # (a large query's frame is not looked for: 20 ms on a 640 x 480 photo, and its
        # tiny-picture candidates are only the few small images)
        inside = strip_frame(query.image) if query_small else None
        pictures = [tiny_picture(p) for p in (query.image, inside) if p is not None]
    elif query.image_id is not None and (record := catalog.image(query.image_id)):
        pictures = [catalog.tiny_picture(query.image_id)]
        query_small = min(record.width or 0, record.height or 0) < MIN_SIDE
    pictures = [p for p in pictures if p is not None]
    if not pictures:
        return {}
    best: dict[int, float] = {}
    for picture in pictures:
        found = library.tiny_pictures.search(
            catalog, picture, TINY_DEPTH, exclude=exclude, allowed=allowed
        )
        for i, score in found:
            best[i] = max(score, best.get(i, -np.inf))
    ranked = sorted(best, key=lambda i: -best[i])[:TINY_DEPTH]
    if query.image is not None and HUE_DEPTH > 0:  # a hue-shifted copy's original
        turned = library.tiny_pictures.search_as_is(
            catalog,
            hue_turned(query.image),
            HUE_DEPTH + len(ranked),
            exclude=exclude,
            allowed=allowed,
        )
        ranked += [i for i, _ in turned if i not in ranked][:HUE_DEPTH]
    if query_small and query.image is not None:  # only a small picture's crops are compared
        within = library.tiny_pictures.search_within(
            catalog,
            query.image,
            CROP_DEPTH,
            offset_k=OFFSET_DEPTH,
            exclude=exclude,
            allowed=allowed,
        )
        ranked += [i for i, _ in within]
    new = list(dict.fromkeys(i for i in ranked if i not in known))
    records = catalog.images(new)  # leaves out images deleted since
    return {
        i: records[i] for i in new if i in records and (query_small or small_picture(records[i]))
    }
