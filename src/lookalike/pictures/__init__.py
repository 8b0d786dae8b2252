"""Bytes to pixels: decoding within limits, colour operations, palette keys, the tiles of
sprite sheets and tiny pictures. It imports nothing else of lookalike.
"""

from .decode import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    DecodeError,
    decode_image,
    sniff_format,
    strip_frame,
    to_rgb,
    trim_transparent,
    turn_hue,
)
from .palettes import RecolourCount, palette_signature, share_of_recolours
from .tiles import Box, find_tiles, split_member, tile_sha256
from .tiny import TINY_LENGTH, TINY_SIDE, hue_turned, tiny_picture

__all__ = [
    "Box",
    "DEFAULT_MAX_PIXELS",
    "DecodeError",
    "IMAGE_EXTENSIONS",
    "RecolourCount",
    "TINY_LENGTH",
    "TINY_SIDE",
    "decode_image",
    "find_tiles",
    "hue_turned",
    "palette_signature",
    "share_of_recolours",
    "sniff_format",
    "split_member",
    "strip_frame",
    "tile_sha256",
    "tiny_picture",
    "to_rgb",
    "trim_transparent",
    "turn_hue",
]
