"""Search: turn queries (files, URLs, `id:N`) into vectors, find neighbours, rank them, and
attach what the catalog knows about each hit.

What the hits are (tiers, near-duplicates collapsed, their JSON) is search/hits.py.

Ranking: in a library with a learned whitening (ranking/whitening.py, tuning/tuner.py), the index's
best WHITENED_DEPTH candidates (plan.py) of a picture query are ranked again (ranking/diffusion.py): their
similarity under the whitening is the hits' score, and diffusion over their neighbourhood graph
orders them; tiers and collapsing are decided on the model's own cosine similarity first, as
their thresholds were measured on it, and exact and copy hits come first. Verified
searches (copies) keep cosine similarity throughout (see search_vector).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.catalog import STORED_FORM_HASHES, Filters, as_stored
from lookalike.embed import wants_alpha
from lookalike.library import Library
from lookalike.pictures import DecodeError, decode_image, trim_transparent
from lookalike.ranking import rank_whitened
from lookalike.sources import SourceError, fetch_bytes, is_url

from .expressions import ExpressionError, combine, parse_expression
from .hits import (
    COPY_THRESHOLD,
    DUPLICATE_THRESHOLD,
    TIER_ORDER,
    Hit,
    QueryResult,
    collapse_near_duplicates,
    match_tier,
)
from .plan import Plan, plan_search
from .query import QueryError, QueryVector

# A turned view's scores count for this much less than the query's own: without it, a plain
# (unturned) copy of an arrow icon found the other arrows through their turns, and copy recall
# fell for every other transform (measured: docs/quality.md; 0.05 and 0.1 scored alike).
TURN_PENALTY = 0.05
# Copies may be turned, so verified searches look for the query turned too; a query smaller
# than this (verify.MIN_SIDE) gets candidates by its tiny picture in all eight symmetries
# instead (_tiny_hits), which found nearly as many and saves three embeddings (docs/quality.md).
TURNED_MIN_SIDE = 64
TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

_ID_QUERY = re.compile(r"^id:(\d+)$")


class Searcher:
    def __init__(self, library: Library, *, trim: bool = False):
        self.library = library
        # Picture queries lose their transparent margins: a sprite cut from a sheet with its
        # whole frame then matches the sprite as `index --tiles` cropped it (pictures/tiles.py).
        self.trim = trim

    # -- queries -> vectors ---------------------------------------------------------------------

    def query_vector(
        self, query: str, *, allow_private_urls: bool = True, details: bool = True
    ) -> QueryVector:
        """The vector for one query string: a file path, an http(s) URL, or id:N.
        `details`: False for a verified search, which never ranks by them (bytes_vector: a
        file's or URL's are then not computed; an id:N query reads its stored ones, one row)."""
        match = _ID_QUERY.match(query.strip())
        if match:
            return self.id_vector(int(match.group(1)))
        if is_url(query):
            try:
                data = fetch_bytes(query, allow_private=allow_private_urls)
            except SourceError as exc:
                raise QueryError(str(exc)) from None
        else:
            path = Path(query)
            if not path.is_file():
                raise QueryError(
                    f"no such file: {query} (a query is a file, an http(s) URL or id:N)"
                )
            data = path.read_bytes()
        return self.bytes_vector(data, details=details)

    def id_vector(self, image_id: int) -> QueryVector:
        catalog = self.library.catalog
        ids, vectors = catalog.vectors([image_id])
        if not len(ids):
            raise QueryError(f"no indexed image with id {image_id}")
        record = catalog.image(image_id)
        whitening = self.library.whitening  # the details are for ranking under it only
        dim = whitening.detail_dim if whitening is not None else 0
        having, details = catalog.details([image_id], dim) if dim else ([], None)
        return QueryVector(
            vectors[0],
            image_id,
            record.sha256 if record else None,
            record.pixel_hash if record else None,
            details=details[0] if len(having) else None,
        )

    def bytes_vector(self, data: bytes, *, details: bool = True) -> QueryVector:
        """The vector of an uploaded or fetched picture. Its details (embed/base.py) only when
        they can be used: `details` (a verified search passes False: it ranks by cosine, not
        under the whitening) and a whitening that reads them."""
        embedder = self.library.embedder
        prep = embedder.preprocessor()
        try:
            decoded = decode_image(
                data,
                min_size=getattr(prep, "size", None),
                keep_alpha=self.trim or wants_alpha(prep),
            )
        except DecodeError as exc:
            raise QueryError(f"cannot read the query image: {exc}") from None
        picture = trim_transparent(decoded.image, opaque=1) if self.trim else decoded.image
        whitening = self.library.whitening if details else None
        # embed_images composites the picture onto grey, unless the model reads transparency
        if whitening is not None and whitening.detail_dim:
            vectors, found = embedder.embed_images_with_details([picture])
        else:
            vectors, found = embedder.embed_images([picture]), None
        vector = as_stored(vectors[0])
        if found is not None:  # likewise, as the catalog does
            found = as_stored(found[0])
        sha = hashlib.sha256(data).hexdigest()
        # --verify works on what was embedded: with --trim, the picture without its margins
        return QueryVector(vector, None, sha, decoded.pixel_hash, picture, details=found)

    def expression_vector(
        self,
        expression: str,
        *,
        files: bool = True,
        fetch: Callable[[str], bytes] | None = None,
        base: QueryVector | None = None,
    ) -> QueryVector:
        """The vector of a text or mixed query (search/expressions.py): `2:cat + ./img.jpg - fruit`.

        Picture terms are id:N, http(s) URLs (read with `fetch`, when given) and, with
        `files`, existing files; other terms are text. `base`: an uploaded picture, added.
        Raises TextNotSupportedError on a model without text, QueryError on a bad term."""
        try:
            terms = parse_expression(expression)
        except ExpressionError as exc:
            raise QueryError(str(exc)) from None
        embedder = self.library.embedder
        pictures: dict[str, QueryVector] = {}

        def picture(term: str) -> np.ndarray | None:
            if _ID_QUERY.match(term) or is_url(term) or (files and Path(term).is_file()):
                if fetch is not None and is_url(term):
                    pictures[term] = self.bytes_vector(fetch(term))
                else:
                    pictures[term] = self.query_vector(term)
                return pictures[term].vector
            return None

        try:
            vector = combine(
                terms, picture, embedder.embed_text, None if base is None else base.vector
            )
        except ExpressionError as exc:
            raise QueryError(str(exc)) from None
        if base is None and len(terms) == 1 and terms[0].weight == 1 and pictures:
            return pictures[terms[0].text]  # one picture: an ordinary query (exact tiers)
        return QueryVector(as_stored(vector), picture=False)

    def embed_bytes(self, data: bytes) -> np.ndarray:
        return self.bytes_vector(data).vector

    # -- vectors -> hits ------------------------------------------------------------------------

    def search_vector(
        self,
        query: QueryVector | np.ndarray,
        k: int = 10,
        *,
        offset: int = 0,
        collapse: bool = True,
        filters: Filters | None = None,
        verify: bool = False,
    ) -> list[Hit]:
        """Hits ranked offset .. offset+k-1 (after collapsing near-duplicates). The query's own
        image, when it is an indexed one, is never among them.

        `verify`: the best hits are checked by verification (search/verify.py: keypoints, or pixels
        for small pictures); those that pass are copies (tier "copy" or "exact") and move to the
        front, with where they match.
        """
        if isinstance(query, np.ndarray):
            query = QueryVector(query)
        plan = plan_search(self.library, query, offset + k, collapse, filters, verify)
        if plan is None:  # nothing passes the filters, or nothing is indexed
            return []
        views = self._views(plan)
        candidates, cosine = self._candidates(plan, views)
        hits = self._hits(plan, candidates)
        if verify:
            hits = self._verified(plan, hits, views)
        return self._tiered(plan, hits, cosine)[offset : plan.want]

    def _views(self, plan: Plan) -> np.ndarray:
        """The vectors searched for: the query's, then, when it is verified and its picture is
        large enough (TURNED_MIN_SIDE), those of its turned views."""
        query, vectors = plan.query, plan.query.vector[None, :]
        if plan.verify and query.image is not None and min(query.image.size) >= TURNED_MIN_SIDE:
            vectors = np.vstack([vectors, self.turned_vectors(query.image)])
        return vectors

    def _candidates(
        self, plan: Plan, views: np.ndarray
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """The candidates (id, score), best first, and each one's cosine similarity: the
        index's best for any view, re-scored exactly from an approximate index, then ranked
        again under the whitening, if the plan has one, and cut to the shortlist."""
        scores, ids = self.library.index.search(
            views, plan.depth, allowed=plan.allowed, filters=plan.pushed
        )
        candidates = _best_per_id(_penalise_turns(scores), ids, plan.query.image_id, plan.depth)
        if plan.rescore:
            candidates = _rescore(self.library, views, candidates)
        cosine = dict(candidates)
        if plan.whitening is not None:  # ranked again; then only the shortlist is read
            candidates = rank_whitened(
                self.library.catalog,
                plan.whitening,
                plan.query.vector,
                candidates,
                COPY_THRESHOLD,
                plan.query.details,
            )
            candidates = candidates[: plan.shortlist]
        return candidates, cosine

    def _hits(self, plan: Plan, candidates: list[tuple[int, float]]) -> list[Hit]:
        """The best candidates as hits with their records, near-duplicates collapsed into the
        hit before them when the plan collapses: as many as are asked for or verified."""
        records = self.library.catalog.images([i for i, _ in candidates])
        candidates = [(i, s) for i, s in candidates if i in records]  # deleted meanwhile
        kept = max(plan.want, plan.checked)
        if plan.collapse:
            return collapse_near_duplicates(
                candidates, records, self.library, kept, DUPLICATE_THRESHOLD
            )
        return [Hit(i, s, records[i]) for i, s in candidates[:kept]]

    def _verified(self, plan: Plan, hits: list[Hit], views: np.ndarray) -> list[Hit]:
        """`hits`, the best `checked` of them verified, and after them the hits that only tiny
        pictures found, verified too (verified_order sorts them in)."""
        from .verify import verify_hits

        checked = plan.checked
        extra = self._tiny_hits(plan, hits, views)
        found_again = {h.id for h in extra}  # ranked below `checked`: verified after all
        hits = hits[:checked] + [h for h in hits[checked:] if h.id not in found_again]
        verify_hits(self.library, plan.query, hits[:checked] + extra)
        return hits + extra

    def _tiny_hits(self, plan: Plan, hits: list[Hit], views: np.ndarray) -> list[Hit]:
        """Candidates for verification by pixels that the vector search left out of its
        `checked` best hits, found by their tiny pictures (candidates.tiny_candidates), each with
        its vector score as a hit. (A hit ranked below those is not verified, so the tiny
        pictures may bring it again: asking for more results must not find fewer copies.)"""
        from .candidates import tiny_candidates

        known = {h.id for h in hits[: plan.checked]}
        known |= {d.id for hit in hits for d in hit.duplicates}
        allowed = plan.allowed
        if plan.pushed is not None:  # the store applies filters itself; tiny pictures need ids
            allowed = self.library.catalog.filter_ids(plan.pushed)
        query = plan.query
        records = tiny_candidates(
            self.library, query, known, exclude=query.image_id, allowed=allowed
        )
        scored = _rescore(self.library, views, [(i, 0.0) for i in records]) if records else []
        return [Hit(i, s, records[i]) for i, s in scored]

    def _tiered(self, plan: Plan, hits: list[Hit], cosine: dict[int, float]) -> list[Hit]:
        """`hits` with their tiers (match_tier) and cosine similarities, in their final order:
        under the whitening, exact and copy tiers first; verified, copies first."""
        query = plan.query
        every = [h for hit in hits for h in (hit, *hit.duplicates)]
        stale = 0  # the last id hashed before v9: read only when a hit shows the query's pixels
        if query.pixel_hash and any(h.record.pixel_hash == query.pixel_hash for h in every):
            stale = int(self.library.catalog.get_meta(STORED_FORM_HASHES) or 0)
        for h in every:
            h.cosine = cosine.get(h.id, h.score)  # tiny pictures' finds: their own
            h.tier = match_tier(h, query, verified=plan.verify, stale_hashes_up_to=stale)
        if plan.whitening is not None:  # exact and copy tiers first, each in its ranked order
            hits.sort(key=lambda h: TIER_ORDER[h.tier])
        if plan.verify:
            from .verify import verified_order

            hits.sort(key=verified_order)
        return hits

    def turned_vectors(self, image: Image.Image) -> np.ndarray:
        """The query turned a quarter, a half and three quarters: copies are often rotated,
        and a global vector does not see through that (tango_icons: rotated copies R@1 0.68
        against 0.9 for mirrored ones). Used with verification, which then confirms them."""
        turned = [image.transpose(t) for t in TURNS]
        vectors = self.library.embedder.embed_images(turned)
        return as_stored(vectors)

    def search(
        self,
        queries: list[str],
        k: int = 10,
        *,
        collapse: bool = True,
        verify: bool = False,
        texts: list[str] = (),
    ) -> list[QueryResult]:
        """Each of `queries` (pictures) and `texts` (text or mixed expressions) in turn. A text
        term on a model without text raises TextNotSupportedError: no query could succeed."""
        results = []
        for query, is_text in [(q, False) for q in queries] + [(t, True) for t in texts]:
            try:
                if is_text:
                    vector = self.expression_vector(query)
                else:
                    vector = self.query_vector(query, details=not verify)
            except QueryError as exc:
                results.append(QueryResult(query, error=str(exc)))
                continue
            hits = self.search_vector(vector, k, collapse=collapse, verify=verify)
            results.append(QueryResult(query, hits))
        return results


def _best_per_id(
    scores: np.ndarray, ids: np.ndarray, exclude: int | None, depth: int
) -> list[tuple[int, float]]:
    """The index's finds for several views, each id once with its best score, best first:
    the first `depth`, less `exclude` (the query's own image) and the index's -1 (none)."""
    best: dict[int, float] = {}
    for i, s in zip(ids.ravel(), scores.ravel()):
        if i >= 0 and i != exclude and s > best.get(int(i), -np.inf):
            best[int(i)] = float(s)
    return sorted(best.items(), key=lambda c: -c[1])[:depth]


def _rescore(library: Library, queries: np.ndarray, candidates: list[tuple[int, float]]):
    """Exact scores from the catalog's vectors, best first (for quantised indexes); with
    several query vectors (the query, then its turned views), each candidate's best."""
    ids, vectors = library.catalog.vectors([i for i, _ in candidates])
    if not len(ids):
        return []
    scores = _penalise_turns(queries @ vectors.T).max(axis=0)
    order = np.argsort(-scores)
    return [(int(ids[i]), float(scores[i])) for i in order]


def _penalise_turns(scores: np.ndarray) -> np.ndarray:
    """Scores with a row per query view (the query, then its turns): TURN_PENALTY off the
    turned views' rows, in place."""
    scores[1:] -= TURN_PENALTY
    return scores
