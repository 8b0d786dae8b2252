"""One image's bytes made ready for the catalog and the model: hashed, decoded within limits,
preprocessed, with its tiny picture and palette key.

The decoding workers (workers.py) and the REST API's add (server/service.py) both go through
here, so an image gets the same row and the same vector whichever way it came in. Imported by
the spawned workers: keep it to what decoding needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from lookalike.catalog import NewImage
from lookalike.embed import Preprocessor, preprocess, wants_alpha
from lookalike.pictures import (
    Box,
    decode_image,
    find_tiles,
    palette_signature,
    tile_sha256,
    tiny_picture,
)


@dataclass(frozen=True)
class Tile:
    """A sprite of a sheet (indexing with --tiles): where it lies, its row, the model input."""

    box: Box
    image: NewImage
    pixels: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """An image ready to record and embed: its row (status 'decoded'), the model input, and,
    with tiles, the sprites of the sheet."""

    image: NewImage
    pixels: np.ndarray
    tiles: tuple[Tile, ...] = ()


def image_sha256(data: bytes) -> str:
    """What the catalog knows an image's bytes by."""
    return hashlib.sha256(data).hexdigest()


def prepare_image(
    data: bytes,
    sha256: str,
    preprocessor: Preprocessor,
    *,
    max_pixels: int,
    tiles: bool = False,
) -> Prepared:
    """Decode and preprocess the image `data` (whose sha256 is `sha256`). With `tiles`, it is
    decoded at full size with its transparency, in which the sprites are found; otherwise at
    no more than the model needs. Raises DecodeError."""
    if tiles:
        decoded = decode_image(data, max_pixels=max_pixels, keep_alpha=True, palette=True)
        sprites = tuple(
            _tile(box, box.crop(decoded.image), preprocessor) for box in find_tiles(decoded.image)
        )
    else:
        decoded = decode_image(
            data,
            max_pixels=max_pixels,
            min_size=getattr(preprocessor, "size", None),
            keep_alpha=wants_alpha(preprocessor),
            palette=True,
        )
        sprites = ()
    image = NewImage(
        sha256,
        len(data),
        status="decoded",
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        frames=decoded.frames,
        pixel_hash=decoded.pixel_hash,
        tiny=tiny_picture(decoded.image),
        palette_key=decoded.palette_key,
    )
    return Prepared(image, preprocess(preprocessor, decoded.image), sprites)


def _tile(box: Box, crop, preprocessor: Preprocessor) -> Tile:
    # A sprite has no bytes of its own: it is known by its pixels, and its byte size is 0.
    image = NewImage(
        tile_sha256(crop),
        0,
        status="decoded",
        width=box.w,
        height=box.h,
        format="tile",
        tiny=tiny_picture(crop),
        palette_key=palette_signature(crop),
    )
    return Tile(box, image, preprocess(preprocessor, crop))
