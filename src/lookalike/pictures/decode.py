"""Decode image bytes into one RGB picture, safely and the same way every time.

Everything that turns bytes into pixels goes through `decode_image`, so that indexing, search
and the server see identical pixels for identical bytes. It guards against hostile files
(pixel limits checked from the header before any pixels are decoded), normalises every mode
Pillow can produce (palette, greyscale, CMYK, 16-bit, float) to 8-bit RGB, applies EXIF
orientation, and composites transparency onto a neutral grey: game art is mostly transparent
PNG, and a sprite on grey looks the same whatever colour its invisible pixels happen to hold.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .palettes import palette_signature

# Formats we promise to read. Pillow can open more (PCX, PPM, ...), and we let it: the list
# is what the tests cover and what `lookalike --help` advertises.
SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "TGA")

IMAGE_EXTENSIONS = frozenset(
    ".png .apng .jpg .jpeg .jpe .jfif .gif .webp .bmp .dib .tif .tiff .ico .tga .pcx .ppm .pgm"
    " .pbm .pnm".split()
)

# Background for transparent pixels: mid grey keeps dark and light sprites visible and does not
# bias the colour statistics the CNN sees.
BACKGROUND_RGB = (128, 128, 128)

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; a 30000 x 30000 header is refused

# Truncated files are errors, not silently grey-padded pictures.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# decode_image checks every header against its own `max_pixels` before any pixel is decoded (this
# is the only place lookalike opens pictures), so Pillow's fixed global guard would only replace
# that clear message ("30000x30000 = 900,000,000 pixels (limit ...)") with its own.
Image.MAX_IMAGE_PIXELS = None


class DecodeError(ValueError):
    """The bytes are not an image we can read; the message says why, for the catalog."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB; with `min_size`, possibly shrunk (JPEG draft, integer reduce)
    width: int  # of the original, as stored in the file (after EXIF rotation)
    height: int
    format: str  # Pillow's format name, e.g. "PNG"
    frames: int  # 1 unless animated; we embed the first frame
    pixel_hash: str | None = None  # of the full-size decoded pixels; None after JPEG draft
    # with `palette`: palettes.palette_signature of the full-size picture ('' for none: any
    # JPEG, a photo); None: not worked out
    palette_key: str | None = None


def sniff_format(header: bytes) -> str | None:
    """The image format named by the first bytes of a file, or None.

    Used to find images whose name does not say so; TGA has no magic number and is only
    recognised by its extension.
    """
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"\x00\x00\x01\x00", "ICO"),
    )
    for magic, name in signatures:
        if header.startswith(magic):
            return name
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: int | None = None,
    keep_alpha: bool = False,
    palette: bool = False,
) -> DecodedImage:
    """Decode `data` into an RGB image (RGBA with `keep_alpha`, for pictures that have it:
    thumbnails keep their transparency; what the model sees never does).

    `min_size`: the caller needs no more than this many pixels on the longer side, so a big
    JPEG may be decoded at 1/2, 1/4 or 1/8 scale (draft mode), which is several times faster.
    `palette`: work out `palette_key` too (for the catalog; about 1 ms a sprite sheet).
    Raises DecodeError with a short human-readable reason for anything unreadable.
    """
    if not data:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between MAX_IMAGE_PIXELS and twice that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            width, height = image.size
            if width <= 0 or height <= 0:
                raise DecodeError(f"invalid size {width}x{height}")
            if width * height > max_pixels:
                raise DecodeError(
                    f"image too large: {width}x{height} = {width * height:,} pixels "
                    f"(limit {max_pixels:,})"
                )
            frames = getattr(image, "n_frames", 1)
            drafted = False
            if fmt == "JPEG" and min_size:
                drafted = image.draft("RGB", (min_size, min_size)) is not None
            image.load()
            hashed = None if drafted else pixel_hash(image)
            image, swapped = _apply_orientation(image)
            if swapped:
                width, height = height, width
            palette_key = None
            if palette:  # of the full-size picture; a JPEG, lossy, is never palette art
                palette_key = "" if fmt == "JPEG" else palette_signature(image)
            rgb = to_rgb(image, min_size=min_size, keep_alpha=keep_alpha)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(f"image too large: {exc}") from None
    except UnidentifiedImageError:
        claimed = sniff_format(data[:16])
        if claimed:
            raise DecodeError(f"corrupt {claimed} file: its header cannot be read") from None
        raise DecodeError("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        # Pillow signals truncated/corrupt data with a zoo of exception types.
        raise DecodeError(f"corrupt or unsupported image: {exc}") from None
    except MemoryError:
        raise DecodeError("image needs too much memory to decode") from None
    return DecodedImage(
        image=rgb,
        width=width,
        height=height,
        format=fmt,
        frames=frames,
        pixel_hash=hashed,
        palette_key=palette_key,
    )


def pixel_hash(image: Image.Image) -> str:
    """Same picture, same hash, whatever the file's bytes (compression level, metadata) or
    the way its pixels are stored: the colours shown are hashed, so a palette sprite saved
    again as an RGB PNG is the same picture, and a palette swap (every index kept, other
    colours: a recolour, everywhere in game art) another. What lies under a fully transparent
    pixel is not shown, so it is not hashed. An RGB picture hashes as it always has."""
    shown = to_rgb(image, keep_alpha=True)  # RGB, or RGBA where the picture has transparency
    data = None
    if shown.mode == "RGBA":
        alpha = np.asarray(shown.getchannel("A"))
        if alpha.min() == 255:
            shown = shown.convert("RGB")
        else:
            pixels = np.array(shown)
            pixels[alpha == 0] = 0
            data = pixels.tobytes()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{shown.mode} {shown.width}x{shown.height} ".encode())
    digest.update(shown.tobytes() if data is None else data)
    return digest.hexdigest()


def _apply_orientation(image: Image.Image) -> tuple[Image.Image, bool]:
    """Rotate as the EXIF orientation tag says; also tell whether width and height swapped."""
    try:
        orientation = image.getexif().get(0x0112, 1)
        if orientation not in range(2, 9):
            return image, False  # the common case; exif_transpose would copy the pixels
        rotated = ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF must not cost us the picture
        return image, False
    if rotated is None:
        return image, False
    return rotated, orientation in (5, 6, 7, 8)


def to_rgb(
    image: Image.Image, *, min_size: int | None = None, keep_alpha: bool = False
) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, transparency composited onto BACKGROUND_RGB.

    With `min_size`, a picture whose sides are both more than twice that is first shrunk by an
    integer factor (box filter, alpha-premultiplied by Pillow), keeping both sides at least
    2 x `min_size`: compositing then touches far fewer pixels, and the caller's final resize
    from twice its target size loses nothing visible.
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _to_8bit(image)
        mode = image.mode
    if mode == "P":
        # Palette images may carry transparency in the palette or in info["transparency"].
        image = image.convert("RGBA")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "L" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "RGB" and "transparency" in image.info:
        image = image.convert("RGBA")
    if min_size:
        factor = min(image.size) // (2 * min_size)
        if factor >= 2 and image.mode in ("RGB", "RGBA", "L"):
            image = image.reduce(factor)
    if image.mode == "RGBA" and keep_alpha:
        return image
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, BACKGROUND_RGB)
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return image


def trim_transparent(image: Image.Image, opaque: int = 32) -> Image.Image:
    """The picture less its margins of (nearly: alpha < `opaque`) transparent pixels; a
    picture without alpha, or transparent all over, as it is."""
    if image.mode != "RGBA":
        return image
    box = image.getchannel("A").point(lambda a: 255 if a >= opaque else 0).getbbox()
    return image.crop(box) if box else image


def turn_hue(hsv, offset: int) -> Image.Image:
    """A picture given as PIL's HSV (an array, height x width x 3) with its hue turned by
    `offset` (of 256 for the whole circle), as RGB: a hue-shifted copy (evaluation), or one
    shifted back (index/tiny.py)."""
    turned = np.array(hsv, dtype=np.uint8, copy=True)
    turned[..., 0] = (turned[..., 0].astype(np.int32) + offset) % 256
    return Image.fromarray(turned, "HSV").convert("RGB")


# Y, Cb, Cr in strip_frame: JPEG keeps luminance best (docs/quality.md, "crops and borders")
CHANNEL_WEIGHTS = (1.0, 0.5, 0.5)


def strip_frame(image: Image.Image, tolerance: int = 16) -> Image.Image | None:
    """The picture inside a frame of one colour (a border added around a copy), or None if
    it has none on all four sides. The frame's colour is the median of the outermost pixels; a
    row or column is frame while its pixels differ from it by `tolerance` or less on average,
    in YCbCr with the colour channels at half weight: JPEG smears a saturated border's colour
    by 50 and more, and its luminance far less."""
    ycc = np.asarray(to_rgb(image).convert("YCbCr"), dtype=np.float32)
    ring = np.concatenate([ycc[0], ycc[-1], ycc[:, 0], ycc[:, -1]])
    difference = np.abs(ycc - np.median(ring, axis=0)) * CHANNEL_WEIGHTS
    difference = difference.max(axis=2)
    rows = difference.mean(axis=1) <= tolerance
    columns = difference.mean(axis=0) <= tolerance
    if rows.all() or columns.all():
        return None  # one colour all over

    def depth(flags) -> int:  # leading rows (or columns) of frame
        return int(np.argmin(flags))

    top, bottom = depth(rows), depth(rows[::-1])
    left, right = depth(columns), depth(columns[::-1])
    if min(top, bottom, left, right) == 0:
        return None
    return to_rgb(image).crop((left, top, image.width - right, image.height - bottom))


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale -> L, scaled by the image's own range."""
    pixels = np.asarray(image, dtype=np.float32)
    if image.mode.startswith("I;16"):
        pixels = pixels / 257.0  # 0..65535 -> 0..255
    else:
        low, high = float(pixels.min()), float(pixels.max())
        if high > 255 or low < 0:
            # 32-bit integer and float data have no fixed range: stretch what is there.
            pixels = (pixels - low) * (255.0 / ((high - low) or 1.0))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L
