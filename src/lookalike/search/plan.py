"""The plan of one search, made before the index is searched: the ids its filters allow, and
how many candidates it takes from the index, reads from the catalog and verifies."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lookalike.catalog import Filters
from lookalike.index import RERANK_DEPTH
from lookalike.library import Library
from lookalike.ranking import Whitening

from .query import QueryVector

CANDIDATE_FACTOR = 4  # candidates fetched per requested hit, to fill k after collapsing
# Candidates ranked again under the library's whitening (and ordered by diffusion over them):
# 400 against 200, lookalike eval: freeciv_flags 0.784 -> 0.810, rltiles 0.593 -> 0.598,
# tango_icons 0.898 -> 0.897, for ~15 ms more a query (docs/quality.md, 'Deeper candidates';
# diffusion.DIFFUSION_NEIGHBOURS grew with it)
WHITENED_DEPTH = 400


@dataclass(frozen=True)
class Plan:
    """One search, as decided before the index is searched (plan_search)."""

    query: QueryVector  # with its pixels, when an indexed image is verified
    collapse: bool  # near-duplicates into the hit before them
    verify: bool
    whitening: Whitening | None  # candidates ranked again under it; None: by cosine
    allowed: np.ndarray | None  # the ids the filters allow; None: any, or as `pushed` says
    pushed: Filters | None  # filters the store applies itself
    want: int  # hits up to the last asked for: offset + k
    checked: int  # the best hits verified; 0 unless verifying
    shortlist: int  # candidates read from the catalog, enough to fill `want` after collapsing
    depth: int  # candidates taken from the index: for the whitening, or to re-score
    rescore: bool  # an approximate index: its quantised scores re-scored exactly


def plan_search(
    library: Library,
    query: QueryVector,
    want: int,
    collapse: bool,
    filters: Filters | None,
    verify: bool,
) -> Plan | None:
    """How deep a search for the hits up to `want` looks (Plan); None when it can find
    nothing: no image passes the filters, or none is indexed."""
    allowed, pushed = allowed_ids(library, filters)
    if allowed is not None and not len(allowed):
        return None
    checked = 0  # hits verified: more than `want` for small pictures, to find copies deeper
    if verify:  # OpenCV is loaded only when asked for
        from .verify import indexed_image, verification_depth

        if query.image is None and query.image_id is not None:
            # An indexed image as the query: its pixels, read once, give it what an
            # uploaded picture gets (turned searches; crop, frame and hue candidates)
            query = replace(query, image=indexed_image(library, query.image_id))
        checked = verification_depth(library, query)
    # A verified search asks for copies: among the hits verification did not confirm,
    # cosine similarity found heavily edited copies (JPEG q10, a quarter of the size)
    # better than the whitening (tango_icons copies R@1 0.981 against 0.958)
    whitening = library.whitening if query.picture and not verify else None
    shortlist = max(want * CANDIDATE_FACTOR if collapse else want, checked)
    depth = max(shortlist, WHITENED_DEPTH if whitening is not None else 0)
    index = library.index
    rescore = getattr(index, "approximate", False)
    if rescore:  # quantised scores: take more, re-score them exactly (searcher._rescore)
        depth = max(depth, RERANK_DEPTH)
    searchable = len(index) if allowed is None else len(allowed)
    depth = min(searchable, depth + (query.image_id is not None))  # and the query's own
    if depth <= 0:
        return None
    return Plan(
        query, collapse, verify, whitening, allowed, pushed,
        want, checked, shortlist, depth, rescore,
    )  # fmt: skip


def allowed_ids(
    library: Library, filters: Filters | None
) -> tuple[np.ndarray | None, Filters | None]:
    """The ids `filters` allow (None: any), and the filters the store applies itself."""
    if filters is None or not filters.active():
        return None, None
    if not library.index.filters_pushdown:
        return library.catalog.filter_ids(filters), None
    # the store filters; only the author needs the catalog
    if filters.author:
        return library.catalog.filter_ids(Filters(author=filters.author)), filters
    return None, filters
