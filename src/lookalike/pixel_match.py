"""Verification for small pictures: is the candidate the query's own pixels, edited?

Keypoints fail on icons and tiles of 16-32 px (verify.py, MIN_SIDE): their corners are the
stair steps of pixel art, shared by every sprite of a similar shape. What such a picture has
instead is few pixels, so they can be compared directly, in every arrangement an edited copy
can take:

- the whole query against the whole candidate, both brought to the *smaller* of the two sizes
  (a quarter-size copy of a 16 px icon is 4 px: shrinking the original reproduces it, where
  enlarging the copy could not);
- the query inside the candidate (a crop), at the candidate's own scale and at smaller ones (a
  crop that was rescaled too);
- the candidate inside the query (a border or a frame was added);
- each of these for the query mirrored and turned by quarter turns (the eight symmetries of a
  square).

The measure is normalised cross-correlation of luminance (OpenCV's matchTemplate,
TM_CCOEFF_NORMED): brightness, contrast, greyscale and most colour changes leave it high, and
it finds where a crop lies. The whole-picture arrangements are compared in HSV value too
(max of R, G, B), which a hue shift leaves unchanged where it moves luminance. The best score
over all arrangements is the pixel similarity; MATCH_THRESHOLD on it was measured with
`lookalike eval --copies` (docs/quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .decode import to_rgb

# verify.py sends a pair here when either picture is under verify.MIN_SIDE on its shorter side.
MAX_SIDE = 128  # larger pictures are shrunk to this on the longer side first (cost bound)
MIN_TEMPLATE = 6  # a crop or framed picture under this on a side is not tried (meaningless)
CROP_SCALES = (1.0, 0.8, 0.6)  # of the largest size at which a crop still fits
FRAME_SCALES = (0.9, 0.83, 0.76)  # of the query, for a candidate inside it
# Measured with bench/pixel_match.py and `lookalike eval --copies --verify` (docs/quality.md):
MATCH_THRESHOLD = 0.95  # at least this: an edited copy (tier "copy")
RANK_THRESHOLD = 0.7  # at least this: ranked by similarity among verified hits
# A mirrored or turned arrangement scores this much less than the query as it is: icon sets
# hold mirrored and turned twins (go-first and go-top, skip-backward and skip-forward), and the
# twin that needs no turning is the better answer. Small, though: a near-twin (0.99 alike)
# must not beat the original mirrored (0.02 -> 0.005: tango_icons copies R@1 0.986 -> 0.988,
# docs/quality.md).
SYMMETRY_PENALTY = 0.005

# The eight symmetries of a square: (quarter turns counter-clockwise, mirrored first?)
_SYMMETRIES = tuple((turns, mirrored) for mirrored in (False, True) for turns in range(4))


@dataclass(frozen=True)
class Pixels:
    """What a picture is compared by: its luminance and HSV value (float32), at most MAX_SIDE
    on the longer side."""

    grey: np.ndarray
    value: np.ndarray  # HSV value, max(R, G, B): what a hue shift leaves as it was
    scale: float  # stored pixels = original pixels * scale
    size: tuple[int, int]  # original (width, height)


@dataclass(frozen=True)
class PixelMatch:
    similarity: float  # normalised cross-correlation in the best arrangement, less any
    # SYMMETRY_PENALTY: what MATCH_THRESHOLD applies to and what copies are ranked by
    region: tuple[int, int, int, int]  # x, y, width, height in the candidate's own pixels
    overlap: float  # share of the candidate's area that the region covers
    mirrored: bool
    turned: int = 0  # quarter turns (counter-clockwise) of the query that matched
    arrangement: str = "whole"  # "whole", "crop" (query inside) or "frame" (candidate inside)


def pixels(image: Image.Image) -> Pixels:
    """The picture as this module compares it: transparency on grey, as indexed pictures are
    decoded (decode.py), since a query may arrive with its alpha kept."""
    image = to_rgb(image)
    w, h = image.size
    scale = min(1.0, MAX_SIDE / max(w, h))
    if scale < 1.0:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    value = np.asarray(image, dtype=np.float32).max(axis=2)
    return Pixels(grey, value, scale, (w, h))


def _turn(grey: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    out = grey[:, ::-1] if mirrored else grey
    return np.ascontiguousarray(np.rot90(out, turns))  # counter-clockwise, as PIL's ROTATE_90


def _resize(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    if grey.shape == (height, width):
        return grey
    shrinking = width * height < grey.shape[0] * grey.shape[1]
    return cv2.resize(
        grey, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def _correlate(image: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Best normalised cross-correlation of the template inside the image, and where. A flat
    template correlates with nothing (OpenCV would say 1; it says 0 for flat windows)."""
    th, tw = template.shape
    if th < 2 or tw < 2 or th > image.shape[0] or tw > image.shape[1]:
        return -1.0, (0, 0)
    low, high, _, _ = cv2.minMaxLoc(template)
    if high - low < 1e-3:
        return -1.0, (0, 0)
    result = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, at = cv2.minMaxLoc(result)
    return float(best), at


def _whole(query: np.ndarray, candidate: np.ndarray) -> float:
    (qh, qw), (ch, cw) = query.shape, candidate.shape
    if qw * qh <= cw * ch:
        return _correlate(query, _resize(candidate, qw, qh))[0]
    return _correlate(candidate, _resize(query, cw, ch))[0]


def _placements(outer: np.ndarray, inner: np.ndarray, native: float, factors: tuple[float, ...]):
    """The inner picture found inside the outer one, at `native` scale (the two pictures' own
    pixels) and at each of `factors` times the largest scale at which it fits: yields (score,
    x, y, width, height), in the outer picture's stored pixels."""
    (oh, ow), (ih, iw) = outer.shape, inner.shape
    largest = min(ow / iw, oh / ih)
    scales = {round(f * largest, 4) for f in factors}
    if native <= largest:
        scales.add(native)
    for s in sorted(scales, reverse=True):
        tw, th = round(iw * s), round(ih * s)
        if min(tw, th) < MIN_TEMPLATE or (tw >= ow and th >= oh):
            continue  # too small to mean anything, or the whole (compared on its own)
        score, (x, y) = _correlate(outer, _resize(inner, tw, th))
        yield score, x, y, tw, th


def match(query: Pixels, candidate: Pixels) -> PixelMatch:
    """The best arrangement of the query on the candidate, and where it lies in the candidate."""
    cand = candidate.grey
    ch, cw = cand.shape
    full = (0, 0, candidate.size[0], candidate.size[1])
    best = PixelMatch(-1.0, full, 1.0, False)

    def keep(score, region_stored, turns, mirrored, arrangement):
        nonlocal best
        if turns or mirrored:
            score -= SYMMETRY_PENALTY
        if score > best.similarity:
            x, y, w, h = (v / candidate.scale for v in region_stored)
            overlap = (w * h) / float(candidate.size[0] * candidate.size[1])
            region = (int(x), int(y), int(round(w)), int(round(h)))
            best = PixelMatch(score, region, float(min(1.0, overlap)), mirrored, turns, arrangement)

    own_scale = candidate.scale / query.scale  # the query's pixels in the candidate's stored ones
    for turns, mirrored in _SYMMETRIES:
        if (turns or mirrored) and best.similarity >= 1.0 - SYMMETRY_PENALTY:
            break  # no turned or mirrored arrangement can do better
        q = _turn(query.grey, turns, mirrored)
        qh, qw = q.shape
        # the whole query on the whole candidate, at the smaller of the two sizes; in
        # luminance, and in HSV value, which a hue shift keeps (a yellow sprite turned blue
        # is darker in luminance)
        q_value = _turn(query.value, turns, mirrored)
        score = max(_whole(q, cand), _whole(q_value, candidate.value))
        keep(score, (0, 0, cw, ch), turns, mirrored, "whole")
        # the query inside the candidate: a crop, at the candidate's own scale or rescaled
        for score, x, y, tw, th in _placements(cand, q, own_scale, CROP_SCALES):
            keep(score, (x, y, tw, th), turns, mirrored, "crop")
        # the candidate inside the query: a border or frame was added around it, at the
        # candidate's own scale (a border of a few pixels: the other scales step past it) or
        # rescaled too
        for score, *_ in _placements(q, cand, 1 / own_scale, FRAME_SCALES):
            keep(score, (0, 0, cw, ch), turns, mirrored, "frame")
    return best
