"""Palette keys: the pictures that are one another's recolours, pixel for pixel.

A palette swap maps each colour to another, one to one: the picture's pixels, each replaced by
the rank of its colour in order of first appearance, are the same for both. That is
`palette_key`. Decoding works it out for every picture it reads at full size (pictures/decode.py; the
catalog keeps it, schema v8); tuning/recolours.py decides what a library full of them needs.

Measured over every distinct picture of each bench set at full size (a throwaway script): the
share with a palette twin among the others was lpc_spritesheets 0.871, rltiles 0.139,
freeciv_flags 0.079 (vertical tricolours are recolours of one another), tango_icons 0.005,
Debian's mate icon theme 0.001, opencv_pairs 0. The key cost 1.0 ms an LPC sheet
(832 x 1344), 0.08 ms a 32 px tile and 2.3 ms an opencv_pairs photo.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from PIL import Image

MAX_COLOURS = 256  # more, and it is not pixel art: a photo or a smooth drawing


MAX_SIDE = 256  # larger pictures are sampled every n-th pixel: the same pixels in a recolour


def palette_key(image: Image.Image) -> tuple[str, str] | None:
    """(key shared by the picture's palette swaps, digest of its own pixels), or None for a
    picture of one colour or more than MAX_COLOURS. Fully transparent pixels count as one
    colour whatever their RGB."""
    step = max(1, -(-max(image.size) // MAX_SIDE))
    if step > 1:  # sampled before converting: a photo's full RGBA copy would cost more than all
        sampled = (-(-image.width // step), -(-image.height // step))
        image = image.resize(sampled, Image.Resampling.NEAREST)  # picks pixels, blends none
    pixels = np.array(image.convert("RGBA"))
    pixels[pixels[..., 3] == 0] = 0
    flat = np.ascontiguousarray(pixels).reshape(-1, 4).view(np.uint32).ravel()
    colours, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    if not 2 <= len(colours) <= MAX_COLOURS:
        return None
    rank = np.empty(len(colours), np.uint8)
    rank[np.argsort(first)] = np.arange(len(colours))  # colours in order of first appearance
    shape = f"{pixels.shape[1]}x{pixels.shape[0]}/{step}".encode()
    key = hashlib.blake2b(rank[inverse].tobytes() + shape, digest_size=16).hexdigest()
    return key, hashlib.blake2b(flat.tobytes(), digest_size=16).hexdigest()


def palette_signature(image: Image.Image) -> str:
    """`palette_key` as the catalog keeps it: "KEY PIXELS", or '' for a picture without one.
    Any mode Pillow can convert; one it cannot (a rare 16-bit or float picture) has none."""
    try:
        found = palette_key(image)
    except (ValueError, OSError):
        return ""
    return f"{found[0]} {found[1]}" if found else ""


def share_of_recolours(signatures: Iterable[str]) -> float:
    """Of the pictures with these `palette_signature`s, the share that have a palette swap
    among the others (the same pixels twice, one picture saved as two files, is not one)."""
    looks: dict[str, set[str]] = defaultdict(set)
    holders: dict[str, int] = defaultdict(int)
    pictures = 0
    for signature in signatures:
        pictures += 1
        if signature:
            key, _, own = signature.partition(" ")
            looks[key].add(own)
            holders[key] += 1
    twinned = sum(holders[key] for key, colours in looks.items() if len(colours) > 1)
    return twinned / pictures if pictures else 0.0


class RecolourCount:
    """`share_of_recolours` of the pictures added, for libraries without palette keys."""

    def __init__(self) -> None:
        self.signatures: list[str] = []

    def add(self, image: Image.Image) -> None:
        self.signatures.append(palette_signature(image))

    def share(self) -> float:
        return share_of_recolours(self.signatures)
