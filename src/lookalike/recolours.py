"""Palette swaps: pictures that are one another's recolours, pixel for pixel.

Game art is full of them (a sprite sheet in ten colourways), and the default model ranks by
colour as much as by shape, so a library of them is better served by `effnet-lite0-shape`.

A palette swap maps each colour to another, one to one: the picture's pixels, each replaced by
the rank of its colour in order of first appearance, are the same for both. That is
`palette_key`. Decoding works it out for every picture it reads at full size (decode.py; the
catalog keeps it, schema v8), so `library_share` counts the palette swaps of a whole library
without reading anything again; `lookalike tune` then re-embeds a library whose model nobody
chose with the model's recolour-blind sibling when they are many (`recolour_blind_model`,
tuning.tune), and tells the owner of any other (`recolour_note`). Libraries indexed before the
keys were kept are counted among the pictures tune reads anyway (`RecolourCount`).

Measured over every distinct picture of each bench set at full size (a throwaway script): the
share with a palette twin among the others was lpc_spritesheets 0.871, rltiles 0.139,
freeciv_flags 0.079 (vertical tricolours are recolours of one another), tango_icons 0.005,
Debian's mate icon theme 0.001, opencv_pairs 0; hence RECOLOUR_SHARE. The key cost 1.0 ms
an LPC sheet (832 x 1344), 0.08 ms a 32 px tile and 2.3 ms an opencv_pairs photo.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .catalog.store import Catalog
    from .library import Library

MAX_COLOURS = 256  # more, and it is not pixel art: a photo or a smooth drawing
MAX_SIDE = 256  # larger pictures are sampled every n-th pixel: the same pixels in a recolour
RECOLOUR_SHARE = 0.3  # of pictures with a palette twin, above which tune switches or says so


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


def library_share(catalog: Catalog) -> float | None:
    """`share_of_recolours` over every picture of the library; None when most of its
    pictures were indexed before palette keys were kept (RecolourCount is then the way)."""
    keys = catalog.palette_keys()
    looked = [key for key in keys if key is not None]
    if not looked or len(looked) * 2 < len(keys):
        return None
    return share_of_recolours(looked)


def recolour_blind_model(library: Library, share: float) -> str | None:
    """The model `lookalike tune` switches `library` to, given that `share` of its pictures
    are recolours of others (`library_share`); None to keep its own. Only a library whose
    model nobody chose is switched (Library.model_chosen_by), and only once: a user who wants
    colours back runs `reindex --model`, which marks the model as theirs. Re-embedding works
    on FAISS libraries only (reembed.py)."""
    if share < RECOLOUR_SHARE or library.model_chosen_by != "default":
        return None
    if library.store.kind != "faiss":
        return None
    return library.embedder.recolour_blind


def recolour_note(
    share: float,
    model: str,
    sees_colour: bool,
    switch_to: str | None = None,
    counted: str = "library's pictures",
) -> str | None:
    """What to tell the user of a library whose pictures (`counted`: "library's pictures" or
    "sampled pictures") are `share` recolours of one another, searched with `model`; None when
    there is nothing to tell. `switch_to`: the model `lookalike tune` would switch this library
    to (`recolour_blind_model`), for a note written where nothing switches it (the server)."""
    if share < RECOLOUR_SHARE or not sees_colour:
        return None
    found = (
        f"{share:.0%} of the {counted} are recolours (palette swaps) of others; {model} "
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
    """`share_of_recolours` of the pictures added, for libraries without palette keys."""

    def __init__(self) -> None:
        self.signatures: list[str] = []

    def add(self, image: Image.Image) -> None:
        self.signatures.append(palette_signature(image))

    def share(self) -> float:
        return share_of_recolours(self.signatures)
