"""What a search returns: hits, their match tiers (exact / copy / similar), near-duplicates
collapsed into one hit, and the JSON shape that the CLI and the REST API share. search/searcher.py
finds the candidates; this module says what they are.

Near-duplicate collapsing: the index returns a few times more candidates than asked for; going
down them best-first, a candidate whose cosine similarity to an already kept hit is at least
`DUPLICATE_THRESHOLD` joins that hit's `duplicates` instead of taking a slot of its own. The
thresholds were measured on edited copies versus distinct images (docs/quality.md). Images with
the same bytes are one catalog row already (with several places), so they never appear twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lookalike.catalog import ImageRecord

if TYPE_CHECKING:
    from lookalike.library import Library

    from .query import QueryVector

DUPLICATE_THRESHOLD = 0.97  # measured: docs/quality.md, 'Near-duplicate threshold'
COPY_THRESHOLD = 0.98  # unverified "copy" tier; measured: docs/quality.md, 'Match tiers'
# A pixel hash from before schema v9 (decode.pixel_hash; catalog/schema.py) is trusted only
# with a vector this close too: catalogs from before the palette was hashed gave palette swaps
# one hash. One made since is of the colours shown, and trusted alone: an opaque palette
# sprite and its RGB re-save, the same colours, differ a little in vector (0.997: the colour
# summary of embed/effnet_lite0.py reads a picture with an alpha channel its own way).
EXACT_MIN_COSINE = 0.999
TIER_ORDER = {"exact": 0, "copy": 1, "similar": 2}


@dataclass(frozen=True)
class Verification:
    matched: bool
    inliers: int
    region: tuple[int, int, int, int] | None = None  # x, y, width, height in the candidate
    overlap: float = 0.0  # share of the candidate's area that the matched region covers
    mirrored: bool = False
    method: str = "keypoints"  # or "pixels" (small pictures: search/pixel_match.py)
    similarity: float | None = None  # pixel similarity, for method "pixels"
    colour_penalty: float = 0.0  # of the pixel similarity, in the order of copies only

    def as_dict(self) -> dict:
        return {
            "matched": self.matched,
            "method": self.method,
            "inliers": self.inliers,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "colour_penalty": round(self.colour_penalty, 4),
            "region": list(self.region) if self.region else None,
            "overlap": round(self.overlap, 3),
            "mirrored": self.mirrored,
        }


@dataclass
class Hit:
    id: int
    score: float
    record: ImageRecord
    tier: str = "similar"  # "exact", "copy" or "similar": see match_tier
    # The model's own cosine similarity, when `score` is another (search under a whitening);
    # tiers are decided on it
    cosine: float | None = None
    duplicates: list[Hit] = field(default_factory=list)
    verification: Verification | None = None  # set by --verify


@dataclass
class QueryResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None


def match_tier(
    hit: Hit, query: QueryVector, *, verified: bool = False, stale_hashes_up_to: int = 0
) -> str:
    """exact: the same bytes or the same colours shown (pixel hash; one of an image up to id
    `stale_hashes_up_to`, hashed before schema v9, only with a cosine of EXACT_MIN_COSINE).
    copy: an edited copy, by geometric verification where it ran (`verified`, pictures large
    enough), else by a score of at least COPY_THRESHOLD.
    similar: the rest. The thresholds are measured in docs/quality.md."""
    record = hit.record
    if query.sha256 and record.sha256 == query.sha256:
        return "exact"
    cosine = hit.score if hit.cosine is None else hit.cosine
    if query.pixel_hash and record.pixel_hash == query.pixel_hash:
        if record.id > stale_hashes_up_to or cosine >= EXACT_MIN_COSINE:
            return "exact"
    if verified and hit.verification is not None:
        return "copy" if hit.verification.matched else "similar"
    return "copy" if cosine >= COPY_THRESHOLD else "similar"  # unverified or unverifiable


def collapse_near_duplicates(
    candidates: list[tuple[int, float]],
    records: dict[int, ImageRecord],
    library: Library,
    k: int,
    threshold: float,
) -> list[Hit]:
    """`candidates` (id, score; best first) as at most `k` hits, each candidate whose cosine
    similarity to a kept hit is at least `threshold` among that hit's duplicates instead."""
    ids, vectors = library.catalog.vectors([i for i, _ in candidates])
    row_of = {image_id: row for row, image_id in enumerate(ids.tolist())}
    similarity = vectors @ vectors.T  # once, rather than per candidate
    hits: list[Hit] = []
    owners: list[Hit] = []  # the kept hits that have a vector, and its row
    owner_rows: list[int] = []
    for image_id, score in candidates:
        row = row_of.get(image_id)
        if row is not None and owner_rows:
            sims = similarity[row, owner_rows]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                owners[best].duplicates.append(Hit(image_id, score, records[image_id]))
                continue
        if len(hits) == k:
            continue  # full: later candidates may still be duplicates of a kept hit
        hit = Hit(image_id, score, records[image_id])
        hits.append(hit)
        if row is not None:
            owners.append(hit)
            owner_rows.append(row)
    return hits


def hit_to_dict(hit: Hit, *, with_duplicates: bool = True) -> dict:
    """The JSON shape of a hit, shared by `lookalike search --json` and the REST API."""
    record = hit.record
    place = record.first_place
    out = {
        "id": hit.id,
        "score": round(hit.score, 4),
        "source": place.source if place else None,
        "member": place.member if place else "",
        "page_url": place.page_url if place else None,
        "title": place.title if place else None,
        "author": place.author if place else None,
        "licence": place.licence if place else None,
        "width": record.width,
        "height": record.height,
        "format": record.format,
        "tier": hit.tier,
    }
    if hit.verification is not None:
        out["verification"] = hit.verification.as_dict()
    if with_duplicates:
        out["duplicates"] = [hit_to_dict(d, with_duplicates=False) for d in hit.duplicates]
    return out
