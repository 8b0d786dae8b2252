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
symmetries of the query at once (mirrored and turned copies): 2 ms for 10,000 images, 25 ms
for 100,000, 0.25 s for a million (`python bench/tiny_pictures.py --scale N`; 144 bytes each).
`search --verify` adds its best TINY_DEPTH to the candidates that are verified by pixels
(verify.py, pixel_match.py), which then decide; a tiny picture alone never makes a copy.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image

from ..decode import to_rgb

TINY_SIDE = 12  # 8, 12 and 16 found the same originals; 12 a few more (docs/quality.md)
TINY_DEPTH = 10  # candidates added to a verified search; most of the gain is in the first 5
# A mirrored or turned match counts for this much less, as in pixel_match.SYMMETRY_PENALTY.
SYMMETRY_PENALTY = 0.02
_SCALE = 127  # int8 storage: the largest component is stored as ±127
TINY_LENGTH = TINY_SIDE * TINY_SIDE  # bytes of one tiny picture
_CHUNK = 65536  # rows converted to float at a time while searching (bounds the memory)


def tiny_picture(image: Image.Image, side: int = TINY_SIDE) -> bytes:
    """The tiny picture of `image` (any mode; transparency on grey, as pictures are indexed),
    as stored in the catalog: side² int8 values. A flat picture gives zeros, which match
    nothing. (Other sides than TINY_SIDE: for bench/tiny_pictures.py.)"""
    grey = to_rgb(image).convert("L").resize((side, side), Image.Resampling.BOX)
    values = np.asarray(grey, dtype=np.float32).ravel()
    values -= values.mean()
    peak = float(np.abs(values).max())
    if peak < 1e-3:
        return bytes(side * side)
    # Scaled to the int8 range (a unit vector's components are mostly far smaller than 1, and
    # rounding them would cost precision); searching normalises them again.
    return np.round(values / peak * _SCALE).astype(np.int8).tobytes()


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
            ids, blobs = catalog.tiny_pictures(after_id=previous[1] if grown else 0)
            whole = [len(b) == TINY_LENGTH for b in blobs]  # a damaged row is skipped, not fatal
            ids, blobs = ids[whole], [b for b, ok in zip(blobs, whole) if ok]
            rows = np.frombuffer(b"".join(blobs), dtype=np.int8).reshape(len(ids), TINY_LENGTH)
            segments = (*self._segments, _Segment.of(ids, rows)) if grown else (_Segment.of(ids, rows),)  # fmt: skip
            if len(segments) > _MAX_SEGMENTS:  # many small additions (uploads): merge them
                segments = (_Segment.merged(segments),)
            self._segments, self._seen = segments, seen

    def search(
        self,
        catalog,
        tiny: bytes,
        k: int = TINY_DEPTH,
        *,
        exclude: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` images whose tiny pictures correlate best with `tiny` in any symmetry
        (less SYMMETRY_PENALTY unless as it is): (id, correlation), best first."""
        self.refresh(catalog)
        segments = self._segments
        if not segments or k <= 0:
            return []
        queries = symmetries(tiny).T  # (TINY_SIDE², 8)
        ids = np.concatenate([s.ids for s in segments])
        best = np.concatenate([s.best(queries) for s in segments])
        if exclude is not None:
            best[ids == exclude] = -np.inf
        if allowed is not None:
            best[~np.isin(ids, allowed)] = -np.inf
        k = min(k, len(best))
        if k == 0:
            return []
        top = np.argpartition(-best, k - 1)[:k]
        top = top[np.argsort(-best[top])]
        return [(int(ids[i]), float(best[i])) for i in top if np.isfinite(best[i])]


_MAX_SEGMENTS = 16


class _Segment:
    """Tiny pictures read together: ids, int8 rows, and each row's 1 / length."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray, inverse_norms: np.ndarray):
        self.ids, self.rows, self.inverse_norms = ids, rows, inverse_norms

    @classmethod
    def of(cls, ids: np.ndarray, rows: np.ndarray) -> _Segment:
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float32))
        return cls(ids, rows, 1.0 / np.maximum(norms, 1e-6))

    @classmethod
    def merged(cls, segments) -> _Segment:
        return cls(*(np.concatenate([getattr(s, f) for s in segments]) for f in ("ids", "rows", "inverse_norms")))  # fmt: skip

    def best(self, queries: np.ndarray) -> np.ndarray:
        """Each row's best correlation with the query's symmetries (columns of `queries`)."""
        best = np.empty(len(self.ids), dtype=np.float32)
        for start in range(0, len(self.ids), _CHUNK):
            block = self.rows[start : start + _CHUNK]
            scores = (block.astype(np.float32) @ queries) * self.inverse_norms[start : start + len(block), None]  # fmt: skip
            scores[:, 1:] -= SYMMETRY_PENALTY
            best[start : start + len(block)] = scores.max(axis=1)
        return best
