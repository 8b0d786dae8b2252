"""Palette swaps: pictures that are one another's recolours, pixel for pixel.

Game art is full of them (a sprite sheet in ten colourways), and the default model ranks by
colour as much as by shape, so a library of them is better served by `effnet-lite0-shape`.
`lookalike tune` counts them among the pictures it reads anyway; when they are many, it
re-embeds a library whose model nobody chose with the model's recolour-blind sibling
(`recolour_blind_model`, tuning.tune), and tells the owner of any other (`recolour_note`).

A palette swap maps each colour to another, one to one: the picture's pixels, each replaced by
the rank of its colour in order of first appearance, are the same for both. That is
`palette_key`. Measured on 2,000 pictures of each bench set drawn at random, decoded as tune
reads them (big pictures shrunk by whole factors first, which blends some colours; a throwaway
script): the share with a palette twin among the others was lpc_spritesheets 0.586 (0.856 at
full size), rltiles 0.123, freeciv_flags 0.075 (vertical tricolours are recolours of one
another), tango_icons 0.005; hence RECOLOUR_SHARE.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .library import Library

MAX_COLOURS = 256  # more, and it is not pixel art: a photo or a smooth drawing
MAX_SIDE = 256  # larger pictures are sampled every n-th pixel: the same pixels in a recolour
RECOLOUR_SHARE = 0.3  # of sampled pictures with a palette twin, above which tune says so


def palette_key(image: Image.Image) -> tuple[str, str] | None:
    """(key shared by the picture's palette swaps, digest of its own pixels), or None for a
    picture of one colour or more than MAX_COLOURS. Fully transparent pixels count as one
    colour whatever their RGB."""
    step = max(1, -(-max(image.size) // MAX_SIDE))
    pixels = np.array(image.convert("RGBA"))[::step, ::step]
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


def recolour_blind_model(library: Library, share: float) -> str | None:
    """The model `lookalike tune` switches `library` to, given that `share` of its sampled
    pictures are recolours of others; None to keep its own. Only a library whose model nobody
    chose is switched (Library.model_chosen_by), and only once: a user who wants colours back
    runs `reindex --model`, which marks the model as theirs. Re-embedding works on FAISS
    libraries only (reembed.py)."""
    if share < RECOLOUR_SHARE or library.model_chosen_by != "default":
        return None
    if library.store.kind != "faiss":
        return None
    return library.embedder.recolour_blind


def recolour_note(
    share: float, model: str, sees_colour: bool, switch_to: str | None = None
) -> str | None:
    """What to tell the user of a library whose sampled pictures are `share` recolours of one
    another, searched with `model`; None when there is nothing to tell. `switch_to`: the model
    `lookalike tune` would switch this library to (`recolour_blind_model`), for a note written
    where nothing switches it (the server's log)."""
    if share < RECOLOUR_SHARE or not sees_colour:
        return None
    found = (
        f"{share:.0%} of the sampled pictures are recolours (palette swaps) of others; {model} "
        "ranks by colour as well as shape, so a recolour ranks low. "
    )
    if switch_to:
        return found + (
            f"`lookalike tune` re-embeds this library (made without --model) with {switch_to}, "
            "which finds them; restart `lookalike serve` after it (docs/quality.md)."
        )
    return found + (
        "To find recolours, index them into another library with --model effnet-lite0-shape "
        "(docs/quality.md)."
    )


class RecolourCount:
    """Counts, among the pictures added, those with a palette swap among the others (the same
    picture twice is not a recolour)."""

    def __init__(self) -> None:
        self.pictures = 0
        self._looks: dict[str, set[str]] = defaultdict(set)

    def add(self, image: Image.Image) -> None:
        self.pictures += 1
        found = palette_key(image)
        if found is not None:
            self._looks[found[0]].add(found[1])

    def share(self) -> float:
        """Of the pictures added, the share that have a recolour among them."""
        twinned = sum(len(colours) for colours in self._looks.values() if len(colours) > 1)
        return twinned / self.pictures if self.pictures else 0.0
