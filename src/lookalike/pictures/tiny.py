"""Tiny pictures: a picture reduced to its layout of light and dark, for copy candidates.

The picture on grey, in luminance, reduced to TINY_SIDE x TINY_SIDE (box filter), minus its
mean, scaled to int8: two pictures' tiny pictures correlate highly when one is a rescaled,
recompressed, brightened or recoloured copy of the other. The catalog keeps one per image
(images.tiny); index/tiny.py searches them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .decode import to_rgb, turn_hue

TINY_SIDE = 12  # 8, 12 and 16 found the same originals; 12 a few more (docs/quality.md)
# A hue shift moves luminance (yellow turned blue is much darker), so a hue-shifted copy's tiny
# picture may not be its original's. The query with its hue turned by a sixth of the circle at
# a time (a turned view is at most 30 degrees from the shift undone) is searched as well, as it
# is only, and its best HUE_DEPTH join the candidates (`eval --copies` hue copies, original
# among the tiny pictures' candidates: rltiles 0.89 -> 0.97, tango_icons 0.96 -> 0.98).
HUE_TURNS = 6
SCALE = 127  # int8 storage: the largest component is stored as ±127
TINY_LENGTH = TINY_SIDE * TINY_SIDE  # bytes of one tiny picture


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
    return np.round(values / peak * SCALE).astype(np.int8).tobytes()


def hue_turned(image: Image.Image) -> list[bytes]:
    """Tiny pictures of `image` with its hue turned by 1 .. HUE_TURNS - 1 sixths of the
    circle (as PIL's HSV turns it); none for a grey picture, which a turn leaves as it is."""
    small = to_rgb(image)
    small = small.resize((min(small.width, 4 * TINY_SIDE), min(small.height, 4 * TINY_SIDE)), Image.Resampling.BOX)  # fmt: skip
    hsv = np.asarray(small.convert("HSV"))
    if int(hsv[..., 1].max()) < 16:  # no colour to turn
        return []
    return [tiny_picture(turn_hue(hsv, turn * 256 // HUE_TURNS)) for turn in range(1, HUE_TURNS)]
