"""Tiny pictures: a second way to find copy candidates, for verification by pixels.

The CNN vector finds what *looks* alike. On small pictures it misses some copies that are
plainly the same pixels: a 16 px icon shrunk to 4-8 px, or saved as JPEG at quality 10-20,
looks to the network like a blur, and its original is not among the vector search's first 30
hits (tango_icons: 2.6% of `eval --copies`; rltiles 5%; docs/quality.md). What such a copy
keeps is its layout of light and dark, which a tiny picture holds: the picture on grey, in
luminance, reduced to TINY_SIDE x TINY_SIDE (box filter), minus its mean, L2-normalised. Two
pictures' inner product is then the correlation of their tiny pictures, which rescaling,
recompression, brightness and contrast, greyscale and most colour changes leave high.

Each image's tiny picture is made when it is decoded and kept in the catalog (images.tiny, 144
bytes, int8). `TinyPictures` holds them in memory and is searched by brute force, for all eight
symmetries of the query at once (mirrored and turned copies): 2 ms for 10,000 images, 17 ms
for 100,000, 0.18 s for a million (`python bench/tiny_pictures.py --scale N`; 144 bytes each).
`search --verify` adds its best TINY_DEPTH to the candidates that are verified by pixels
(search/verify.py, search/pixel_match.py), which then decide; a tiny picture alone never makes a copy.

A crop's tiny picture is not its original's. `search_within` looks for a small picture as a
part of larger ones instead: reduced to the cells it would cover in their tiny pictures, were
it an unscaled crop, and slid over them (CROP_DEPTH more candidates, and OFFSET_DEPTH laid off
the cells' edges; bounded by CROP_BUDGET). Nor is a hue-shifted copy's, whose luminance
moved: `hue_turned` gives the query's tiny pictures with its hue turned back by steps
(HUE_DEPTH more candidates).
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
from PIL import Image

from lookalike.pictures import TINY_LENGTH, TINY_SIDE, to_rgb

MIN_CROP_CELLS = 3  # a crop covering fewer cells a side is not looked for
# A crop rarely starts on a cell's edge, and half a cell off blurs a detailed picture's cells
# into different ones: the picture as it is is also laid on the cells a third and two thirds
# of a cell to the right and down (9 templates; its mirrored and turned views only at 0).
# Measured on `eval --copies` crops (docs/quality.md): the original among the best 5 for
# rltiles 0.54 -> 0.65, tango_icons 0.62 -> 0.77; in all 8 views, less (0.62, 0.75) for 5x
# the time. Ranked with the rest, they pushed turned crops out of the best 5: they get their
# own OFFSET_DEPTH places.
PHASES = (0.0, 1 / 3, 2 / 3)
# Images x templates compared by one crop search, at most (bench/tiny_pictures.py --scale),
# and the views searched, in order of preference, as (symmetries, laid at all PHASES?): up to
# 5,000 small pictures that a crop fits, all 8 symmetries and the phases (16 templates each);
# 8,000 as it is and mirrored, with the phases (10); 8,888 as it is, with them (9); 40,000 as
# it is and mirrored (2); 80,000 as it is; none beyond.
CROP_BUDGET = 80_000
CROP_VIEWS = ((8, True), (2, True), (1, True), (2, False), (1, False))
MIN_WINDOW_SPREAD = 16.0  # variance per cell, in stored units (±127), of a window not flat
# A mirrored or turned match counts for this much less (for candidates only; the pixel
# comparison that decides has its own, smaller pixel_match.SYMMETRY_PENALTY).
SYMMETRY_PENALTY = 0.02
# Rows converted to float at a time while searching (bounds the memory): 16,384 (9 MB of
# float32, near the cache) searched a million in 183 ms, 65,536 in 275 ms, and 100,000 in 17
# against 27 ms (bench/tiny_pictures.py --scale); converting, not multiplying, is most of it
_CHUNK = 16384


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """int8 tiny pictures -> float32 rows of unit length (zero rows stay zero)."""
    rows = rows.astype(np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


def symmetries(tiny: bytes, side: int = TINY_SIDE) -> np.ndarray:
    """The eight symmetries of a tiny picture (8 x side² float32, unit length), the picture as
    it is first."""
    square = np.frombuffer(tiny, dtype=np.int8).reshape(side, side)
    views = [np.rot90(s, turns) for s in (square, np.fliplr(square)) for turns in range(4)]
    return _unit_rows(np.stack([v.ravel() for v in views]))


class TinyPictures:
    """The tiny pictures of a library's images, in memory, brought up to date from the catalog
    before each search: images added since are read (ids only grow) and kept as one more
    segment, anything else (a delete) reloads them all. One instance may serve several
    threads, each with its own catalog connection (the web service)."""

    def __init__(self, *, recheck_every: float = 0.0):
        self._segments: tuple[_Segment, ...] = ()  # replaced whole, never changed in place
        self._seen: tuple[int, int] | None = None  # the catalog's (rows, max id) when read
        # Seconds between looks at the catalog (one took 41 ms at a million images, bench):
        # the server looks at most once a second. Missing an image added meanwhile, or
        # offering one deleted meanwhile (the searcher drops it), costs nothing else.
        self.recheck_every = recheck_every
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(s.ids) for s in self._segments)

    def refresh(self, catalog) -> None:
        with self._lock:
            if time.monotonic() - self._checked < self.recheck_every:
                return
            self._checked = time.monotonic()
            seen = catalog.image_count_and_max_id()
            if seen == self._seen:
                return
            previous = self._seen
            grown = (  # only inserts since: rows and max id grew alike
                previous is not None
                and seen[1] > previous[1]
                and seen[0] - previous[0] == seen[1] - previous[1]
            )
            ids, sizes, blobs = catalog.tiny_pictures(after_id=previous[1] if grown else 0)
            whole = [len(b) == TINY_LENGTH for b in blobs]  # a damaged row is skipped, not fatal
            ids, sizes = ids[whole], sizes[whole]
            blobs = [b for b, ok in zip(blobs, whole) if ok]
            rows = np.frombuffer(b"".join(blobs), dtype=np.int8).reshape(len(ids), TINY_LENGTH)
            segment = _Segment.of(ids, rows, sizes)
            segments = (*self._segments, segment) if grown else (segment,)
            if len(segments) > _MAX_SEGMENTS:  # many small additions (uploads): merge them
                segments = (_Segment.merged(segments),)
            self._segments, self._seen = segments, seen

    def search(
        self,
        catalog,
        tiny: bytes,
        k: int,
        *,
        exclude: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` images whose tiny pictures correlate best with `tiny` in any symmetry
        (less SYMMETRY_PENALTY unless as it is): (id, correlation), best first."""
        queries = symmetries(tiny).T  # (TINY_SIDE², 8)
        return self._ranked(catalog, queries, k, True, exclude, allowed)

    def search_as_is(
        self,
        catalog,
        pictures: list[bytes],
        k: int,
        *,
        exclude: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` images whose tiny pictures correlate best with any of `pictures`, as they
        are (no symmetries; hue_turned's views): (id, correlation), best first."""
        if not pictures:
            return []
        rows = np.frombuffer(b"".join(pictures), dtype=np.int8).reshape(len(pictures), -1)
        return self._ranked(catalog, _unit_rows(rows).T, k, False, exclude, allowed)

    def _ranked(self, catalog, queries, k, penalised, exclude, allowed) -> list[tuple[int, float]]:
        """The `k` images whose tiny pictures correlate best with any column of `queries`."""
        self.refresh(catalog)
        segments = self._segments  # one state throughout, as another thread may refresh
        if not segments or k <= 0:
            return []
        ids = np.concatenate([s.ids for s in segments])
        best = np.concatenate([s.best(queries, penalised) for s in segments])
        return _best(ids, best, k, exclude, allowed)

    def search_within(
        self,
        catalog,
        image: Image.Image,
        k: int,
        *,
        exclude: int | None = None,
        allowed: np.ndarray | None = None,
        offset_k: int,
    ) -> list[tuple[int, float]]:
        """The `k` images that `image` looks most like a part of (a crop): in each symmetry,
        the picture is reduced to the cells it would cover in a larger image's tiny picture,
        were it an unscaled crop of it, and slid over that tiny picture; (id, best
        correlation, less SYMMETRY_PENALTY unless as it is), best first. Then up to
        `offset_k` more that the picture as it is, laid off the cells' edges (PHASES), finds.
        Only images larger than the picture, and crops of MIN_CROP_CELLS cells a side or
        more, are searched."""
        self.refresh(catalog)
        segments = self._segments  # one state throughout, as another thread may refresh
        if not segments:
            return []
        grey = to_rgb(image).convert("L")
        # Its time grows with images x templates: in a large library of small pictures,
        # fewer views (CROP_VIEWS), then nothing.
        fitting = sum(int(segment.fits(grey)[0].sum()) for segment in segments)
        chosen = next((v for v in CROP_VIEWS if fitting * _templates(*v) <= CROP_BUDGET), None)
        if chosen is None:
            return []
        symmetries, phased = chosen
        views = [grey] + [grey.transpose(t) for t in _TRANSPOSES[: symmetries - 1]]
        ids = np.concatenate([segment.ids for segment in segments])
        scores = np.concatenate([segment.best_within(views, phased) for segment in segments], 1)
        found = _best(ids, scores[0], k, exclude, allowed)
        if phased and offset_k > 0:
            scores[1][np.isin(ids, [i for i, _ in found])] = -np.inf
            found += _best(ids, scores[1], offset_k, exclude, allowed)
        return found


def _templates(symmetries: int, phased: bool) -> int:
    """Templates per image of a crop search in these views (what CROP_BUDGET counts)."""
    return symmetries + (len(PHASES) ** 2 - 1 if phased else 0)


# The seven symmetries besides the identity, as PIL transposes (a turn swaps width and height).
_TRANSPOSES = tuple(Image.Transpose)
_MAX_SEGMENTS = 16


def _best(ids, scores, k, exclude, allowed) -> list[tuple[int, float]]:
    """The `k` best-scoring (id, score), best first, less `exclude`, within `allowed`."""
    if exclude is not None:
        scores[ids == exclude] = -np.inf
    if allowed is not None:
        scores[~np.isin(ids, allowed)] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return [(int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def _crop_templates(view: Image.Image, cells_w: int, cells_h: int, phased: bool):
    """The picture as tiny-picture cells, were it a crop covering `cells_w` x `cells_h` of
    them: (template minus its mean, unit length; cells across; cells down; offset?), one per
    sub-cell offset (PHASES, or only 0). An offset template leaves out the partial cell at the
    end; flat ones and ones under MIN_CROP_CELLS are left out."""
    width, height = view.size
    cell_w, cell_h = width / cells_w, height / cells_h
    phases = PHASES if phased else (0.0,)
    for fy in phases:
        for fx in phases:
            across, down = cells_w - (fx > 0), cells_h - (fy > 0)
            if min(across, down) < MIN_CROP_CELLS:
                continue
            box = (fx * cell_w, fy * cell_h, (fx + across) * cell_w, (fy + down) * cell_h)
            values = view.resize((across, down), Image.Resampling.BOX, box=box)
            values = np.asarray(values, np.float32)
            values = values - values.mean()
            norm = float(np.linalg.norm(values))
            if norm > 1e-3:
                yield values / norm, across, down, bool(fx or fy)


@functools.lru_cache(maxsize=256)
def _windows(cells_w: int, cells_h: int) -> tuple[np.ndarray, np.ndarray]:
    """The places a cells_w x cells_h window fits in a TINY_SIDE square: for each, the flat
    indices of its cells (places x cells), and the window's indicator (TINY_LENGTH x places)."""
    corners = [y * TINY_SIDE + x for y in range(TINY_SIDE - cells_h + 1) for x in range(TINY_SIDE - cells_w + 1)]  # fmt: skip
    offsets = [y * TINY_SIDE + x for y in range(cells_h) for x in range(cells_w)]
    cells = np.add.outer(np.array(corners), np.array(offsets))
    return cells, _placed(np.ones(len(offsets), np.float32), cells)


def _placed(template: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The template at each place (TINY_LENGTH x places)."""
    placed = np.zeros((len(cells), TINY_LENGTH), np.float32)
    placed[np.arange(len(cells))[:, None], cells] = template.ravel()[None, :]
    return placed.T


class _Segment:
    """Tiny pictures read together: ids, int8 rows, each row's 1 / length, and the images'
    sizes (width, height)."""

    def __init__(self, ids, rows, inverse_norms, sizes):
        self.ids, self.rows, self.inverse_norms, self.sizes = ids, rows, inverse_norms, sizes

    @classmethod
    def of(cls, ids: np.ndarray, rows: np.ndarray, sizes: np.ndarray) -> _Segment:
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float32))
        return cls(ids, rows, 1.0 / np.maximum(norms, 1e-6), sizes)

    @classmethod
    def merged(cls, segments) -> _Segment:
        return cls(*(np.concatenate([getattr(s, f) for s in segments]) for f in ("ids", "rows", "inverse_norms", "sizes")))  # fmt: skip

    def best_within(self, views: list[Image.Image], phased: bool = False) -> np.ndarray:
        """Each row's best normalised correlation with any of `views` (the query's
        symmetries, the first as it is) placed anywhere inside it, at the scale an unscaled
        crop of the view's size has in that image: laid on the cells' edges (row 0 of the
        result), and the first view laid off them at PHASES if `phased` (row 1); -inf where
        no view fits. The templates are zero-mean, so one's inner product with a window is
        their covariance; the windows' sums and sums of squares give their spread, computed
        once for all templates of a shape."""
        best = np.full((2, len(self.ids)), -np.inf, dtype=np.float32)
        # (cells_w, cells_h) -> [(view, template, rows, offset?)]
        shapes: dict[tuple[int, int], list] = {}
        for n, view in enumerate(views):
            fits, cells_w, cells_h = self.fits(view)
            keys = cells_w * TINY_SIDE * 2 + cells_h
            for key in np.unique(keys[fits]):
                cw, ch = divmod(int(key), TINY_SIDE * 2)
                rows = fits & (keys == key)
                for template, across, down, offset in _crop_templates(view, cw, ch, phased and n == 0):  # fmt: skip
                    shapes.setdefault((across, down), []).append((n, template, rows, offset))
        for (cw, ch), entries in shapes.items():
            cells, indicator = _windows(cw, ch)
            placed = np.hstack([_placed(template, cells) for _, template, _, _ in entries])
            penalties = np.array([SYMMETRY_PENALTY if n else 0.0 for n, *_ in entries], np.float32)  # fmt: skip
            fitting = np.stack([rows for _, _, rows, _ in entries], axis=1)  # rows x templates
            offset = np.array([o for *_, o in entries])
            members = np.flatnonzero(fitting.any(axis=1))
            for start in range(0, len(members), _CHUNK):
                chunk = members[start : start + _CHUNK]
                rows = self.rows[chunk].astype(np.float32)
                sums = rows @ indicator  # (matrix products: faster here than integral images)
                spread = (rows * rows) @ indicator - sums * sums / float(cw * ch)
                # A (nearly) flat window matches nothing: its spread is lost to rounding
                inverse = np.where(spread > MIN_WINDOW_SPREAD * cw * ch, 1.0 / np.sqrt(np.maximum(spread, 1e-6)), 0.0)  # fmt: skip
                scores = (rows @ placed).reshape(len(chunk), len(entries), -1)
                scores = (scores * inverse[:, None, :]).max(axis=2) - penalties
                scores[~fitting[chunk]] = -np.inf
                for row, kind in enumerate((~offset, offset)):
                    if kind.any():
                        best[row, chunk] = np.maximum(best[row, chunk], scores[:, kind].max(axis=1))  # fmt: skip
        return best

    def fits(self, view: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which rows' images `view` may be an unscaled crop of (larger, and covering at least
        MIN_CROP_CELLS cells a side of their tiny pictures), and the cells it covers across
        and down in each."""
        width, height = view.size
        widths, heights = self.sizes[:, 0], self.sizes[:, 1]
        cells_w = np.rint(TINY_SIDE * width / np.maximum(widths, 1)).astype(np.int32)
        cells_h = np.rint(TINY_SIDE * height / np.maximum(heights, 1)).astype(np.int32)
        fits = (width <= widths) & (height <= heights) & ((width < widths) | (height < heights))
        fits &= (cells_w >= MIN_CROP_CELLS) & (cells_h >= MIN_CROP_CELLS)
        fits &= (cells_w < TINY_SIDE) | (cells_h < TINY_SIDE)
        return fits, cells_w, cells_h

    def best(self, queries: np.ndarray, penalised: bool = True) -> np.ndarray:
        """Each row's best correlation with the query's symmetries (columns of `queries`;
        all but the first less SYMMETRY_PENALTY if `penalised`)."""
        best = np.empty(len(self.ids), dtype=np.float32)
        for start in range(0, len(self.ids), _CHUNK):
            block = self.rows[start : start + _CHUNK]
            scores = (block.astype(np.float32) @ queries) * self.inverse_norms[start : start + len(block), None]  # fmt: skip
            if penalised:
                scores[:, 1:] -= SYMMETRY_PENALTY
            best[start : start + len(block)] = scores.max(axis=1)
        return best
