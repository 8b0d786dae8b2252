"""Palette swaps: pictures that are one another's recolours, pixel for pixel.

Game art is full of them (a sprite sheet in ten colourways), and the default model ranks by
colour as much as by shape, so a library of them is better served by `effnet-lite0-shape`.

A palette swap maps each colour to another, one to one: the picture's pixels, each replaced by
the rank of its colour in order of first appearance, are the same for both. That is
`palette_key`. Decoding works it out for every picture it reads at full size (pictures/decode.py; the
catalog keeps it, schema v8), so `library_share` counts the palette swaps of a whole library
without reading anything again; `lookalike tune` then re-embeds a library whose model nobody
chose with the model's recolour-blind sibling when they are many (`recolour_blind_model`,
tuner.tune), and tells the owner of any other (`recolour_note`). Libraries indexed before the
keys were kept are counted among the pictures tune reads anyway (`RecolourCount`).

Measured over every distinct picture of each bench set at full size (a throwaway script): the
share with a palette twin among the others was lpc_spritesheets 0.871, rltiles 0.139,
freeciv_flags 0.079 (vertical tricolours are recolours of one another), tango_icons 0.005,
Debian's mate icon theme 0.001, opencv_pairs 0; hence RECOLOUR_SHARE. The key cost 1.0 ms
an LPC sheet (832 x 1344), 0.08 ms a 32 px tile and 2.3 ms an opencv_pairs photo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lookalike.library import Library

RECOLOUR_SHARE = 0.3  # of pictures with a palette twin, above which tune switches or says so


def recolour_blind_model(library: Library, share: float) -> str | None:
    """The model `lookalike tune` switches `library` to, given that `share` of its pictures
    are recolours of others (`library_share`); None to keep its own. Only a library whose
    model nobody chose is switched (Library.model_chosen_by), and only once: a user who wants
    colours back runs `reindex --model`, which marks the model as theirs. Re-embedding works
    on FAISS libraries only (ingest/reembedding.py)."""
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
