"""Geometric verification: is a candidate really an edited copy of the query?

The global vector says two pictures look alike; verification checks that the same local
structure appears in both, in the same arrangement: ORB keypoints in each picture, matched by
descriptor (Lowe's ratio test), then RANSAC fits a similarity transform (shift, scale, rotation)
that most matches agree with. Enough agreeing matches ("inliers") mean the candidate contains
the query, cropped, rescaled, rotated or recompressed; a mirrored query is tried too. The
transform also says *where*: the query's outline mapped into the candidate gives the matched
region and how much of the candidate it covers, as TinEye reports.

Pictures are brought to WORK_SIZE on the longer side before keypoints are found (enlarged by
nearest neighbour, which keeps hard edges as corners). Where either picture is under MIN_SIDE,
keypoints are not to be trusted and search/pixel_match.py compares the pixels themselves instead.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageOps

from lookalike.catalog import DownloadLog
from lookalike.pictures import DecodeError, decode_image, to_rgb
from lookalike.sources import ImageGone, read_image_bytes

from . import pixel_match
from .hits import Hit, Verification

if TYPE_CHECKING:
    from lookalike.library import Library

    from .query import QueryVector

WORK_SIZE = 256  # longer side the pictures are brought to (up or down)
# Below this (shorter side, in pixels) keypoints are mostly the stair steps of pixel art, which
# any two sprites of similar shape share: measured on tango icons and rltiles (docs/quality.md),
# keypoint verification there confirmed wrong hits, so such pairs are compared pixel by pixel.
MIN_SIDE = 64
KEYPOINT_DEPTH = 8  # hits verified by keypoints (each costs a decode and ORB when not cached)
# Hits verified by pixels when the query is small (~40 ms for 30 icons): a heavily edited copy
# of an icon is often not among the vector search's first 8 (docs/quality.md).
PIXEL_DEPTH = 30
MIN_INLIERS = 20
MIN_INLIER_SHARE = 0.1  # of the keypoints of the picture with fewer
RATIO = 0.8

cv2.setNumThreads(1)  # verification runs per request; threads belong to the caller

# Candidates' features are kept by the sha256 of their bytes (~25 KB each): the same images
# come up as candidates again and again, and reading and decoding them is most of the time of
# a verified search (photos: ~105 of ~150 ms cold).
FEATURE_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Features:
    keypoints: np.ndarray  # (n, 2) in work coordinates
    descriptors: np.ndarray | None  # (n, 32) uint8
    scale: float  # work coordinates = original coordinates * scale
    size: tuple[int, int]  # original (width, height)


def _from_pixels(found: pixel_match.PixelMatch) -> Verification:
    matched = found.similarity >= pixel_match.MATCH_THRESHOLD
    return Verification(matched, 0, found.region, found.overlap, found.mirrored, "pixels",
                        found.similarity, found.colour_penalty)  # fmt: skip


class _FeatureCache:
    """A small thread-safe LRU map: sha256 -> Features."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, Features] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Features | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: Features) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


candidate_features = _FeatureCache(FEATURE_CACHE_SIZE)
candidate_pixels = _FeatureCache(FEATURE_CACHE_SIZE)  # sha256 -> pixel_match.Pixels (<= 128 KB)
_orb = None


def _detector():
    global _orb
    if _orb is None:
        _orb = cv2.ORB_create(nfeatures=600, scaleFactor=1.3, nlevels=6, edgeThreshold=15,
                              patchSize=15, fastThreshold=8)  # fmt: skip
    return _orb


def features(image: Image.Image) -> Features:
    """Keypoints and descriptors of an RGB picture."""
    w, h = image.size
    scale = WORK_SIZE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.NEAREST if scale > 1 else Image.BILINEAR
    grey = np.asarray(image.convert("L").resize(size, resample))
    grey = cv2.copyMakeBorder(grey, 16, 16, 16, 16, cv2.BORDER_REPLICATE)  # corners near edges
    keypoints, descriptors = _detector().detectAndCompute(grey, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2) - 16
    return Features(points, descriptors, scale, (w, h))


def verify(query: Features, query_mirror: Features | None, candidate: Features) -> Verification:
    """Match the query (and its mirror image's features, when given) against a candidate."""
    best = _match(query, candidate)
    if not best.matched and query_mirror is not None:
        flipped = _match(query_mirror, candidate)
        if flipped.inliers > best.inliers:
            best = Verification(
                flipped.matched, flipped.inliers, flipped.region, flipped.overlap, True
            )
    return best


def _match(query: Features, candidate: Features) -> Verification:
    if query.descriptors is None or candidate.descriptors is None:
        return Verification(False, 0)
    if len(query.descriptors) < 2 or len(candidate.descriptors) < 2:
        return Verification(False, 0)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_INLIERS:
        return Verification(False, len(good))
    src = query.keypoints[[m.queryIdx for m in good]]
    dst = candidate.keypoints[[m.trainIdx for m in good]]
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000, confidence=0.99
    )
    inliers = int(mask.sum()) if mask is not None else 0
    fewer = min(len(query.keypoints), len(candidate.keypoints))
    if transform is None or inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * fewer:
        return Verification(False, inliers)
    region, overlap = _region(query, candidate, transform)
    return Verification(True, inliers, region, overlap)


def _region(query: Features, candidate: Features, transform: np.ndarray):
    """The query's outline mapped into the candidate, in the candidate's own pixels."""
    qw, qh = query.size[0] * query.scale, query.size[1] * query.scale
    corners = np.array([[0, 0], [qw, 0], [qw, qh], [0, qh]], dtype=np.float32)
    mapped = corners @ transform[:, :2].T + transform[:, 2]
    mapped /= candidate.scale  # back to the candidate's original pixel coordinates
    cw, ch = candidate.size
    x0, y0 = np.clip(mapped.min(axis=0), 0, [cw, ch])
    x1, y1 = np.clip(mapped.max(axis=0), 0, [cw, ch])
    width, height = max(0.0, x1 - x0), max(0.0, y1 - y0)
    overlap = (width * height) / float(cw * ch) if cw * ch else 0.0
    return (int(x0), int(y0), int(round(width)), int(round(height))), float(min(1.0, overlap))


def verification_depth(library: Library, query: QueryVector) -> int:
    """How many of the best hits verify_hits checks for this query."""
    if query.image is not None:
        size = query.image.size
    elif query.image_id is not None and (record := library.catalog.image(query.image_id)):
        size = (record.width or 0, record.height or 0)
    else:
        return KEYPOINT_DEPTH
    return PIXEL_DEPTH if min(size) < MIN_SIDE else KEYPOINT_DEPTH


def small_picture(record) -> bool:
    """Whether a record's picture is compared pixel by pixel (under MIN_SIDE on a side)."""
    return min(record.width or 0, record.height or 0) < MIN_SIDE


def verified_order(hit: Hit) -> tuple:
    """Sort key of verified hits: copies (and exact matches) first; then hits whose pixels are
    close enough to the query's to be ranked by that (pixel_match.RANK_THRESHOLD: heavily
    edited copies of small pictures), best first (less any colour penalty: of a copy's
    original and its recolours, the original first); then the rest in the vector search's
    order (sorting is stable)."""
    v = hit.verification
    similarity = v.similarity if v is not None else None
    by_pixels = similarity is not None and similarity >= pixel_match.RANK_THRESHOLD
    ranking = similarity - v.colour_penalty if by_pixels else 0.0
    return (hit.tier == "similar", not by_pixels, -ranking)


def verify_hits(library: Library, query: QueryVector, hits: list[Hit]) -> None:
    """Set `verification` on each hit: does it hold the query, and where? Pairs where either
    picture is under MIN_SIDE are compared pixel by pixel, the others by keypoints. Hits whose
    file is gone or unreadable stay unverified (None)."""
    image = query.image
    downloads = DownloadLog(library.catalog)
    if image is None and query.image_id is not None:
        image = _load(library, library.catalog.image(query.image_id), downloads)
    if image is None or not hits:
        return
    image = to_rgb(image)  # a query keeps its alpha for some models; candidates are on grey
    query_small = min(image.size) < MIN_SIDE

    def small(record) -> bool:
        return query_small or small_picture(record)

    # Each side's description is made once, and only if some candidate needs it.
    query_pixels = pixel_match.pixels(image) if any(small(h.record) for h in hits) else None
    query_features = mirror_features = None
    if not all(small(h.record) for h in hits):
        query_features = features(image)
        mirror_features = features(ImageOps.mirror(image))
    # SQLite stays in this thread: the cached files of URL places are looked up first.
    cached = {h.record.id: _cached_paths(h.record, downloads) for h in hits}
    downloads_dir = library.downloads_dir

    def described(record, cache, describe, min_size):
        found = cache.get(record.sha256) if record.sha256 else None
        if found is None:
            candidate = _load_record(record, downloads_dir, cached[record.id], min_size)
            if candidate is None:
                return None
            found = describe(candidate)
            if record.sha256:
                cache.put(record.sha256, found)
        return found

    def check(record) -> Verification | None:
        if small(record):
            found = described(record, candidate_pixels, pixel_match.pixels, pixel_match.MAX_SIDE)
            return None if found is None else _from_pixels(pixel_match.match(query_pixels, found))
        found = described(record, candidate_features, features, WORK_SIZE)
        return None if found is None else verify(query_features, mirror_features, found)

    # Reading, decoding and ORB on larger pictures release the GIL for long stretches: those
    # candidates are checked side by side. Small pictures' comparisons are many short OpenCV
    # calls with Python between them, which two threads made slower (rltiles copies, p50 of
    # a verified search: 117 ms in two threads, 97 ms in one): they are checked here.
    by_keypoints = [h for h in hits if not small(h.record)]
    if by_keypoints:
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            for hit, result in zip(by_keypoints, pool.map(check, [h.record for h in by_keypoints])):  # fmt: skip
                hit.verification = result
    for hit in hits:
        if small(hit.record):
            hit.verification = check(hit.record)


def indexed_image(library: Library, image_id: int) -> Image.Image | None:
    """An indexed image's pixels, read again from where it was found (None if it is gone or
    unreadable there): what `search id:N --verify` compares."""
    return _load(library, library.catalog.image(image_id), DownloadLog(library.catalog))


def _load(library: Library, record, downloads: DownloadLog) -> Image.Image | None:
    if record is None:
        return None
    return _load_record(record, library.downloads_dir, _cached_paths(record, downloads))


def _cached_paths(record, downloads: DownloadLog) -> dict[str, str]:
    """Download-cache paths of the record's URL places, looked up in this thread (SQLite)."""
    return {p.source: path for p in record.places if (path := downloads.cached_path(p.source))}


def _load_record(
    record, downloads_dir, cached: dict[str, str], min_size: int = WORK_SIZE
) -> Image.Image | None:
    try:
        data = read_image_bytes(record, _KnownPaths(cached), downloads_dir)
        return decode_image(data, min_size=min_size).image
    except (ImageGone, DecodeError, OSError):
        return None


class _KnownPaths:
    """Stands in for a DownloadLog in worker threads: the paths were looked up beforehand."""

    def __init__(self, paths: dict[str, str]):
        self.paths = paths

    def cached_path(self, source: str) -> str | None:
        return self.paths.get(source)
