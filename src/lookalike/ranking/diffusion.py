"""How a picture query's candidates are ordered in a library with a learned whitening.

The vector index returns the best WHITENED_DEPTH candidates by the model's cosine similarity;
here they are mapped by the library's whitening (ranking/whitening.py) and then ordered by
*diffusion* over their own neighbourhood graph: the query and its candidates are nodes, each
joined to those of its DIFFUSION_NEIGHBOURS nearest that count it among theirs too, and the
query's weight spreads along those edges (Zhou et al., "Ranking on data manifolds", 2003;
Iscen et al., "Efficient diffusion on region manifolds", CVPR 2017, which diffuses over the
candidates of each query as here). A candidate that is close to the query's close neighbours
rises: the 16 px drawing of an icon, reached through its 22 px and 24 px drawings, or a flag's
shield variant through its large one. Measured on ../shared/bench-data (docs/quality.md,
'Diffusion'): mAP@10 +0.006 to +0.037 (`lookalike eval`), for about a millisecond a query.

A hit's score stays its similarity under the whitening; only the order of the hits that are
not copies comes from the diffusion. Copies (cosine similarity >= COPY_THRESHOLD, the tier's
threshold, measured on cosine) come first, ordered by their score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lookalike.catalog import Catalog

    from .whitening import Whitening

# Chosen on tango_icons, freeciv_flags and rltiles by bench/whitening.py (k 15-30, alpha
# 0.5-0.7 all within 0.01 of each other; docs/quality.md, 'Diffusion'); 20 of 200 candidates,
# then 40 of search/plan.py's WHITENED_DEPTH of 400, the same share ('Deeper candidates')
DIFFUSION_NEIGHBOURS = 40
DIFFUSION_ALPHA = 0.6  # how far weight spreads: each step keeps this share of the last
DIFFUSION_POWER = 3  # edge weights are similarities cubed, so that weak edges count little
DIFFUSION_STEPS = 20  # 0.6 ** 20 < 1e-4: converged


def rank_whitened(
    catalog: Catalog,
    whitening: Whitening,
    query: np.ndarray,
    candidates: list[tuple[int, float]],
    copy_threshold: float,
    query_details: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """`candidates` (id, cosine similarity) as (id, similarity under the whitening), best
    first: those whose cosine similarity makes them copies (`copy_threshold`, the exact ones
    among them) before all others, as tiers are listed, by their score; the others in the
    order of diffusion. `query_details`: the model's details of the query, if it has them."""
    ids, vectors = catalog.vectors([i for i, _ in candidates])
    if not len(ids):
        return []
    details = None
    if whitening.detail_dim:
        # An image without sound details (none in a library of one model, but a damaged row)
        # gets the library's mean details: its vector alone then decides
        mean = whitening.mean[-whitening.detail_dim :]
        details = np.tile(mean, (len(ids), 1))
        having, found = catalog.details(ids, whitening.detail_dim)
        if len(having):
            details[np.isin(ids, having)] = found
        if query_details is not None and query_details.shape == mean.shape:
            query_details = query_details[None, :]
        else:
            query_details = None
    mapped = whitening.apply(vectors, details)
    mapped_query = whitening.apply(query[None, :], query_details)[0]
    scores = mapped @ mapped_query
    place = np.empty(len(ids), np.int64)
    place[diffusion_order(mapped_query, mapped)] = np.arange(len(ids))
    cosine = dict(candidates)

    # Copies by their score under the whitening, so that scores fall within a tier (sprite
    # sheets of one body type are such "copies" of 6.5 others each, on lpc_spritesheets)
    def key(row: int) -> tuple[bool, float]:
        copy = cosine[int(ids[row])] >= copy_threshold
        return (not copy, -float(scores[row]) if copy else float(place[row]))

    return [(int(ids[r]), float(scores[r])) for r in sorted(range(len(ids)), key=key)]


def diffusion_order(
    query: np.ndarray,
    candidates: np.ndarray,
    *,
    neighbours: int = DIFFUSION_NEIGHBOURS,
    alpha: float = DIFFUSION_ALPHA,
) -> np.ndarray:
    """Rows of `candidates` (n, d), best first: the one most similar to `query` (d,), then
    the others by diffusion from the query (diffusion_weights), those it does not reach last,
    by their similarity. All L2-normalised.

    The nearest stays first because that is where an edited copy is: diffusion favours
    look-alikes that are each other's neighbours over a lone original, and ranked first it
    lost 0.01-0.02 of edited copies' recall@1 (`lookalike eval --copies`; docs/quality.md)."""
    if not len(candidates):
        return np.zeros(0, np.int64)
    similarity = candidates @ query
    order = np.lexsort((-similarity, -diffusion_weights(query, candidates, neighbours, alpha)))
    nearest = int(np.argmax(similarity))
    return np.concatenate([[nearest], order[order != nearest]])


def diffusion_weights(
    query: np.ndarray, candidates: np.ndarray, neighbours: int, alpha: float
) -> np.ndarray:
    """How much of the query's weight reaches each of `candidates` (n, d) over the graph of
    the query and the candidates, each node joined to those of its `neighbours` nearest that
    count it among theirs too (0: not reached)."""
    nodes = np.vstack([query[None, :], candidates]).astype(np.float32)
    affinity = np.maximum(nodes @ nodes.T, 0) ** DIFFUSION_POWER
    np.fill_diagonal(affinity, 0)
    k = min(neighbours, len(nodes) - 1)
    if k < len(nodes) - 1:  # each node keeps its k strongest edges...
        weakest = np.argpartition(-affinity, k, axis=1)[:, k:]
        np.put_along_axis(affinity, weakest, 0, axis=1)
    affinity = np.minimum(affinity, affinity.T)  # ...that the other end keeps too
    degree = affinity.sum(axis=1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-12)), 0).astype(np.float32)
    spread = alpha * affinity * scale[:, None] * scale[None, :]
    seed = np.zeros(len(nodes), np.float32)
    seed[0] = 1
    weight = seed
    for _ in range(DIFFUSION_STEPS):  # weight = (I - alpha S)^-1 seed, by iteration
        weight = spread @ weight + seed
    return weight[1:]
