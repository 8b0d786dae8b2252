"""Verification for small pictures: is the candidate the query's own pixels, edited?

Keypoints fail on icons and tiles of 16-32 px (search/verify.py, MIN_SIDE): their corners are the
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
over all arrangements, less a little for a mirror or turn, is the pixel similarity;
MATCH_THRESHOLD on it was measured with `lookalike eval --copies` (docs/quality.md).

Colour: game art is full of recolours (a potion in six colours, pants in three browns), whose
luminance is the same or nearly, so a copy ties with its original's recolours. The edits that
keep hues (brightness, contrast, saturation, greyscale) scale the colours' chroma by one
factor; a recolour changes some parts' hues and not others. So the best arrangement's chroma
(YCbCr's Cb and Cr, at most COLOUR_GRID cells a side, which JPEG's halved and blurred chroma
survives) is fitted as one factor times the candidate's; the share of the query's chroma that
the fit leaves, beyond COLOUR_SLACK, costs up to COLOUR_PENALTY in the order of the copies
found (`ranking`), not in their tier: a recolour is an edited copy too, only the less likely
original. A hue shift turns every colour by one angle (one complex factor on Cb + iCr): the
fit allowing that costs HUE_TURN more, so that the original of a hue-shifted copy pays little
and a palette swap, whose parts turned each their own way, more. A grey query says nothing of
colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from lookalike.pictures import to_rgb

# search/verify.py sends a pair here when either picture is under verify.MIN_SIDE on its shorter side.
MAX_SIDE = 128  # larger pictures are shrunk to this on the longer side first (cost bound)
MIN_TEMPLATE = 6  # a crop or framed picture under this on a side is not tried (meaningless)
CROP_SCALES = (1.0, 0.8, 0.6)  # of the largest size at which a crop still fits
FRAME_SCALES = (0.9, 0.83, 0.76)  # of the query, for a candidate inside it
# Measured with bench/pixel_match.py and `lookalike eval --copies --verify` (docs/quality.md):
MATCH_THRESHOLD = 0.95  # at least this: an edited copy (tier "copy")
RANK_THRESHOLD = 0.6  # at least this: ranked by similarity among verified hits (0.7 until
# bench/pixel_match.py: rltiles copies R@1 0.969 -> 0.971 at 0.6, tango_icons 0.989 both)
# A mirrored or turned arrangement scores this much less than the query as it is: icon sets
# hold mirrored and turned twins (go-first and go-top, skip-backward and skip-forward), and the
# twin that needs no turning is the better answer. Small, though: a near-twin (0.996 alike)
# must not beat the original mirrored (0.02 -> 0.005: tango_icons copies R@1 0.986 -> 0.988;
# 0.005 -> 0.002: copy-tier precision 0.9931 -> 0.9941, R@1 as it was; docs/quality.md).
SYMMETRY_PENALTY = 0.002
# A mirror with a quarter turn (a transpose) is two edits that no editor offers as one, where a
# mirror, a flip and any turn are one: when a copy is, pixel for pixel, a turn of its original
# and a transpose of a twin (rltiles' zap_sleep2 and 3), the turn is the likelier edit
TRANSPOSE_PENALTY = 2 * SYMMETRY_PENALTY
# Colours the query's cannot come from by a hue-keeping edit cost this much of `ranking`
# (module docstring). Measured by replaying `eval --copies --verify` hits (docs/quality.md):
# rltiles copies R@1 0.959 -> 0.966, tiered precision 0.970 -> 0.974, tango_icons as before;
# counted in the tier too, it lost tango_icons JPEG copies their tier (recall 0.939 -> 0.936).
COLOUR_PENALTY = 0.02
COLOUR_SLACK = 0.1  # a fit leaving this share of the chroma or less costs nothing (JPEG)
# Colours that one turn of every hue explains (a hue shift) cost this share of the penalty, and
# what the turn leaves beyond the slack: a hue-shifted copy's original pays 0.005, where its
# palette swaps, whose parts turned each their own way, pay more (docs/quality.md)
HUE_TURN = 0.25
COLOUR_GRID = 8
MIN_CHROMA = 2.0  # mean |chroma| per cell (of ±128) under which a query counts as grey

# The eight symmetries of a square: (quarter turns counter-clockwise, mirrored first?)
_SYMMETRIES = tuple((turns, mirrored) for mirrored in (False, True) for turns in range(4))


@dataclass(frozen=True)
class Pixels:
    """What a picture is compared by: its luminance and HSV value (float32) and its chroma,
    at most MAX_SIDE on the longer side."""

    grey: np.ndarray
    value: np.ndarray  # HSV value, max(R, G, B): what a hue shift leaves as it was
    chroma: np.ndarray  # YCbCr's Cb and Cr less 128 (height x width x 2, int8)
    scale: float  # stored pixels = original pixels * scale
    size: tuple[int, int]  # original (width, height)
    # A query is compared with many candidates (verify: up to ~50 a search): its turned and
    # resized planes are made once, not once per candidate; bounded by the sizes of those
    _made: dict = field(default_factory=dict, compare=False, repr=False)

    def turned(self, plane: str, turns: int, mirrored: bool) -> np.ndarray:
        """`grey` or `value` turned (_turn), made once."""
        key = (plane, turns, mirrored)
        if key not in self._made:
            self._made[key] = _turn(getattr(self, plane), turns, mirrored)
        return self._made[key]

    def turned_tiles(self, plane: str, odd: bool) -> Tiles:
        """`grey` or `value` in the symmetries that keep its shape (`odd`: that swap it), side
        by side in _SYMMETRIES' order, made once."""
        key = (plane, "tiles", odd)
        if key not in self._made:
            group = [(t, m) for t, m in _SYMMETRIES if t % 2 == odd]
            self._made[key] = side_by_side([self.turned(plane, t, m) for t, m in group])
        return self._made[key]

    def resized(self, plane: str, width: int, height: int) -> np.ndarray:
        """`grey` or `value` at width x height (_resize), made once."""
        key = (plane, width, height)
        if key not in self._made:
            self._made[key] = _resize(getattr(self, plane), width, height)
        return self._made[key]


@dataclass(frozen=True)
class PixelMatch:
    similarity: float  # normalised cross-correlation in the best arrangement, less any
    # SYMMETRY_PENALTY: what MATCH_THRESHOLD applies to
    region: tuple[int, int, int, int]  # x, y, width, height in the candidate's own pixels
    overlap: float  # share of the candidate's area that the region covers
    mirrored: bool
    turned: int = 0  # quarter turns (counter-clockwise) of the query that matched
    arrangement: str = "whole"  # "whole", "crop" (query inside) or "frame" (candidate inside)
    colour_penalty: float = 0.0  # (COLOUR_PENALTY at most)

    @property
    def ranking(self) -> float:
        """What verified copies are ordered by: the similarity less the colour penalty."""
        return self.similarity - self.colour_penalty


def pixels(image: Image.Image) -> Pixels:
    """The picture as this module compares it: transparency on grey, as indexed pictures are
    decoded (pictures/decode.py), since a query may arrive with its alpha kept."""
    image = to_rgb(image)
    w, h = image.size
    scale = min(1.0, MAX_SIDE / max(w, h))
    if scale < 1.0:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    value = np.asarray(image, dtype=np.float32).max(axis=2)
    chroma = (np.asarray(image.convert("YCbCr"), dtype=np.int16)[..., 1:] - 128).astype(np.int8)
    return Pixels(grey, value, chroma, scale, (w, h))


def symmetry_penalty(turns: int, mirrored: bool) -> float:
    """What an arrangement's score loses for the edit it takes: nothing as it is, a
    SYMMETRY_PENALTY for one mirror, flip or turn, a TRANSPOSE_PENALTY for a mirror and a
    quarter turn together."""
    if mirrored and turns % 2:
        return TRANSPOSE_PENALTY
    return SYMMETRY_PENALTY if turns or mirrored else 0.0


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


def _unturn(grey: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """The inverse of _turn."""
    out = np.rot90(grey, -turns)
    return np.ascontiguousarray(out[:, ::-1] if mirrored else out)


def _turn_rect(rect, shape, turns: int, mirrored: bool):
    """Where a rectangle (x, y, width, height) of an array of `shape` lies once the array is
    turned (_turn)."""
    x, y, w, h = rect
    height, width = shape
    if mirrored:
        x = width - x - w
    for _ in range(turns):  # a quarter turn counter-clockwise: column x becomes row width - x
        x, y, w, h = y, width - x - w, h, w
        height, width = width, height
    return x, y, w, h


class Tiles(NamedTuple):
    """Pictures of one shape side by side (`side_by_side`), for one matchTemplate over them all:
    most of a small comparison's time is the calls, not the pixels."""

    mosaic: np.ndarray
    count: int
    height: int
    width: int


def side_by_side(pictures: list[np.ndarray]) -> Tiles:
    height, width = pictures[0].shape
    mosaic = pictures[0] if len(pictures) == 1 else np.hstack(pictures)
    return Tiles(mosaic, len(pictures), height, width)


def _correlate_tiles(tiles: Tiles, template: np.ndarray) -> list[tuple[float, int, int]]:
    """The best normalised cross-correlation of the template inside each of `tiles`, and
    where: (score, x, y) per tile; windows across two tiles are left out. A flat template
    correlates with nothing (OpenCV would say 1; it says 0 for flat windows)."""
    th, tw = template.shape
    height, width = tiles.height, tiles.width
    if th < 2 or tw < 2 or th > height or tw > width:
        return [(-1.0, 0, 0)] * tiles.count
    low, high, _, _ = cv2.minMaxLoc(template)
    if high - low < 1e-3:
        return [(-1.0, 0, 0)] * tiles.count
    result = cv2.matchTemplate(tiles.mosaic, template, cv2.TM_CCOEFF_NORMED)
    found = []
    for n in range(tiles.count):
        _, best, _, (x, y) = cv2.minMaxLoc(result[:, n * width : n * width + width - tw + 1])
        found.append((float(best), x, y))
    return found


def _scales(outer_shape, inner_shape, native: float, factors: tuple[float, ...]):
    """The sizes (width, height) at which an inner picture is looked for inside an outer one:
    at `native` scale (the two pictures' own pixels) and at each of `factors` times the
    largest scale at which it fits, largest first, less those too small to mean anything and
    the whole outer picture (compared on its own)."""
    (oh, ow), (ih, iw) = outer_shape, inner_shape
    largest = min(ow / iw, oh / ih)
    scales = {round(f * largest, 4) for f in factors}
    if native <= largest:
        scales.add(native)
    for s in sorted(scales, reverse=True):
        tw, th = round(iw * s), round(ih * s)
        if min(tw, th) >= MIN_TEMPLATE and not (tw >= ow and th >= oh):
            yield tw, th


class _Found(NamedTuple):
    """One arrangement compared: its score (before any SYMMETRY_PENALTY), its place in the
    order arrangements were once tried in one by one (the first of equal scores wins), where
    it lies in the candidate's stored pixels, and for a frame where in the turned query."""

    score: float
    order: int
    region: tuple
    turns: int
    mirrored: bool
    arrangement: str
    query_window: tuple | None = None


def match(query: Pixels, candidate: Pixels) -> PixelMatch:
    """The best arrangement of the query on the candidate, and where it lies in the candidate.
    Symmetries whose turned query has one shape are compared together (_correlate_tiles)."""
    cand = candidate.grey
    ch, cw = cand.shape
    full = (0, 0, candidate.size[0], candidate.size[1])
    best = PixelMatch(-1.0, full, 1.0, False)
    windows = None  # the best arrangement's parts compared: (query's, candidate's), stored px
    tried: list[_Found] = []
    own_scale = candidate.scale / query.scale  # the query's pixels in the candidate's stored ones
    for odd in (False, True):  # symmetries that keep the query's shape, then those that swap it
        as_it_is = max(f.score for f in tried if not (f.turns or f.mirrored)) if odd else -1.0
        if as_it_is >= 1.0 - SYMMETRY_PENALTY:
            break  # the query as it is matched: no turned arrangement can do better
        group = [(n, t, m) for n, (t, m) in enumerate(_SYMMETRIES) if t % 2 == odd]
        qs, q_values = query.turned_tiles("grey", odd), query.turned_tiles("value", odd)
        qh, qw = qs.height, qs.width
        # the whole query on the whole candidate, at the smaller of the two sizes; in
        # luminance, and in HSV value, which a hue shift keeps (a yellow sprite turned blue
        # is darker in luminance)
        turned_back = side_by_side([_unturn(cand, t, m) for _, t, m in group])  # crops too
        if qw * qh <= cw * ch:
            whole = [
                _correlate_tiles(tiles, _resize(c, qw, qh))
                for tiles, c in ((qs, cand), (q_values, candidate.value))
            ]
        else:  # the query shrunk to the candidate's size: the query as it is against the
            # candidate turned back, which is the same comparison
            size = (ch, cw) if odd else (cw, ch)  # the candidate's (width, height), turned back
            values_back = side_by_side([_unturn(candidate.value, t, m) for _, t, m in group])
            whole = [
                _correlate_tiles(tiles, query.resized(plane, *size))
                for plane, tiles in (("grey", turned_back), ("value", values_back))
            ]
        for i, (n, t, m) in enumerate(group):
            score = max(whole[0][i][0], whole[1][i][0])
            tried.append(_Found(score, n * 3, (0, 0, cw, ch), t, m, "whole"))
        # the query inside the candidate: a crop, at the candidate's own scale or rescaled;
        # the query as it is inside the candidate turned back
        for tw, th in _scales(cand.shape, (qh, qw), own_scale, CROP_SCALES):
            size = (th, tw) if odd else (tw, th)  # the query's own width and height
            found = _correlate_tiles(turned_back, query.resized("grey", *size))
            for (n, t, m), (score, x, y) in zip(group, found):
                rect = _turn_rect((x, y, *size), (turned_back.height, turned_back.width), t, m)
                tried.append(_Found(score, n * 3 + 1, rect, t, m, "crop"))
        # the candidate inside the query: a border or frame was added around it, at the
        # candidate's own scale (a border of a few pixels: the other scales step past it) or
        # rescaled too
        for tw, th in _scales((qh, qw), cand.shape, 1 / own_scale, FRAME_SCALES):
            found = _correlate_tiles(qs, _resize(cand, tw, th))
            for (n, t, m), (score, x, y) in zip(group, found):
                tried.append(_Found(score, n * 3 + 2, (0, 0, cw, ch), t, m, "frame", (x, y, tw, th)))  # fmt: skip
    for found in sorted(tried, key=lambda f: f.order):  # stable: scales largest first
        score = found.score - symmetry_penalty(found.turns, found.mirrored)
        if score > best.similarity:
            x, y, w, h = (v / candidate.scale for v in found.region)
            overlap = (w * h) / float(candidate.size[0] * candidate.size[1])
            region = (int(x), int(y), int(round(w)), int(round(h)))
            best = PixelMatch(score, region, float(min(1.0, overlap)), found.mirrored, found.turns, found.arrangement)  # fmt: skip
            windows = (found.query_window, found.region)
    if windows is None:
        return best
    penalty = COLOUR_PENALTY * _colour_misfit(query, candidate, best, *windows)
    return replace(best, colour_penalty=penalty)


def is_pixel_copy(image: Image.Image, other: Image.Image) -> bool:
    """Whether one picture is an edited copy of the other by their pixels (MATCH_THRESHOLD):
    what `eval --copies` asks of a hit that the labels do not name."""
    return match(pixels(image), pixels(other)).similarity >= MATCH_THRESHOLD


def _colour_misfit(query: Pixels, candidate: Pixels, found: PixelMatch, query_window, window):
    """How far the query's colours are from the candidate's in the arrangement found, beyond
    what a hue-keeping edit explains: 0 (or a grey query) to 1 (module docstring)."""
    q = np.stack([_turn(query.chroma[..., i], found.turned, found.mirrored) for i in (0, 1)], 2)
    if query_window is not None:  # the candidate inside the query (a frame)
        x, y, w, h = query_window
        q = q[y : y + h, x : x + w]
    x, y, w, h = (int(round(v)) for v in window)
    c = candidate.chroma[y : y + max(1, h), x : x + max(1, w)]
    cells = (min(COLOUR_GRID, q.shape[1], c.shape[1]), min(COLOUR_GRID, q.shape[0], c.shape[0]))
    q, c = (cv2.resize(a.astype(np.float32), cells, interpolation=cv2.INTER_AREA) for a in (q, c))
    q_power = float((q * q).sum())
    if q_power < (MIN_CHROMA**2) * cells[0] * cells[1]:
        return 0.0
    factor = max(0.0, float((q * c).sum()) / max(float((c * c).sum()), 1e-6))
    left = float(((q - factor * c) ** 2).sum()) / q_power
    # a hue shift turns every colour by one angle: in the Cb-Cr plane, one complex factor
    q_z, c_z = q[..., 0] + 1j * q[..., 1], c[..., 0] + 1j * c[..., 1]
    turn = complex((q_z * np.conj(c_z)).sum()) / max(float((np.abs(c_z) ** 2).sum()), 1e-6)
    left_turned = float((np.abs(q_z - turn * c_z) ** 2).sum()) / q_power
    misfit = min(max(0.0, left - COLOUR_SLACK), max(0.0, left_turned - COLOUR_SLACK) + HUE_TURN)
    return min(1.0, misfit)
