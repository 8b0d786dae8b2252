"""Variants: pictures of one size that have most of their pixels in common, but not all.

Icon themes and game art are full of them: network-idle and network-transmit differ by which
screen is lit, justify-left and justify-center by where the lines end, a flag with and without
its arms, a wall tile with and without a crack. Each was drawn as a picture of its own, and what
tells it from its variants is a detail that a picture's one vector barely sees: at each size the
variants rank above the same icon drawn at another size (tango_icons: 77 of the 82 queries
whose first hit was wrong got another icon of the query's own size).

The library shows such pairs, unlabelled, as it shows its look-alikes (ranking/whitening.py,
`neighbour_pairs`): `lookalike tune` keeps the pixels of the small pictures it reads anyway
(`variant_pixels`), and among each one's NEAREST look-alikes under a first whitening takes those
of the same size whose pixels agree over at least MIN_SAME of the area either one covers, but
not all of it (`variant_pairs`). The whitening then stretches what separates them (its
`variants`).

Only in a library whose subjects come in several sizes: where over SEVERAL_SIZES of the
pictures kept have a look-alike of another size among their SIZE_NEIGHBOURS nearest
(tango_icons 0.98, freeciv_flags 0.995). There a variant takes the place of the same picture
drawn at another size. In a tile set of mostly one size (rltiles: 0.05), variants (a potion in
five colours, a wall with and without moss) are what "similar" should find: learned, its
3,266 pairs, 96% of them two tiles of one category, cost its mAP@10 by category 0.607 ->
0.540, and even the 162 that have a look-alike of another size among their ten nearest cost
0.600 -> 0.579 (docs/quality.md 'Variants').

Pixels are compared exactly. Pixel art is stored losslessly; photos and anything saved as JPEG
never agree pixel for pixel, so they find no variants, and their ranking is learned as before.
A background of one colour around the picture (a tile set's colour key, most of its border)
counts as transparent: tiles would otherwise agree wherever both show it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lookalike.ranking import nearest_rows

MAX_AREA = 128 * 128  # larger pictures are not kept: 2,000 of them at most 64 KB each
MIN_SAME = 0.3  # share of the covered area whose pixels agree (bench-data, docs/quality.md)
NEAREST = 10  # look-alikes of each picture compared with it pixel for pixel
SIZE_NEIGHBOURS = 3  # a look-alike of another size among these nearest...
SEVERAL_SIZES = 0.5  # ...for over this share of the pictures: subjects in several sizes


def variant_pixels(image: Image.Image) -> np.ndarray | None:
    """The picture's RGBA pixels, fully transparent ones as zeros (their colour is invisible),
    and so the background: the colour of over half the border, when there is one; or None for
    a picture of over MAX_AREA pixels."""
    if image.width * image.height > MAX_AREA:
        return None
    pixels = np.array(image.convert("RGBA"))
    pixels[pixels[..., 3] == 0] = 0
    colour = pixels.reshape(-1, 4).view(np.uint32).reshape(pixels.shape[:2])  # one number a pixel
    border = np.concatenate([colour[0], colour[-1], colour[1:-1, 0], colour[1:-1, -1]])
    values, counts = np.unique(border, return_counts=True)
    if counts.max() * 2 > len(border):
        pixels[colour == values[counts.argmax()]] = 0
    return pixels


def same_share(a: np.ndarray, b: np.ndarray) -> float:
    """Of the pixels that either picture covers (not fully transparent), the share that are
    equal in both; 0 for pictures of different sizes or two transparent ones."""
    if a.shape != b.shape:
        return 0.0
    covered = (a[..., 3] > 0) | (b[..., 3] > 0)
    area = int(covered.sum())
    if not area:
        return 0.0
    return int(((a == b).all(axis=-1) & covered).sum()) / area


def variant_pairs(
    mapped: np.ndarray,
    pixels: list[np.ndarray | None],
    sizes: list[tuple[int, int] | None],
    *,
    nearest: int = NEAREST,
) -> list[tuple[int, int]]:
    """(i, j), i < j, rows of `mapped` (L2-normalised vectors under a first whitening) that
    are variants: j among i's `nearest` or i among j's; the same size; their pixels
    (`pixels[row]`, from variant_pixels; None: not kept) the same over at least MIN_SAME of
    their area but not all of it (the same pixels make one picture, saved twice). None at all
    unless over SEVERAL_SIZES of the pictures kept have a look-alike of another size among
    their SIZE_NEIGHBOURS nearest (`sizes[row]`, the pictures' (width, height); None: not
    known)."""
    kept = np.array([row for row, p in enumerate(pixels) if p is not None], dtype=np.int64)
    if len(kept) < 2:
        return []
    near = nearest_rows(np.asarray(mapped), nearest, kept)
    resized = [
        sizes[row] is not None and any(sizes[k] not in (None, sizes[row]) for k in others)
        for row, others in zip(kept.tolist(), near[:, :SIZE_NEIGHBOURS].tolist())
    ]
    if np.mean(resized) <= SEVERAL_SIZES:
        return []
    pairs: set[tuple[int, int]] = set()
    for i, others in zip(kept.tolist(), near.tolist()):
        for j in others:
            pair = (min(i, j), max(i, j))
            if pixels[j] is None or pair in pairs:
                continue
            if MIN_SAME <= same_share(pixels[i], pixels[j]) < 1.0:
                pairs.add(pair)
    return sorted(pairs)
