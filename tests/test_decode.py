"""Decoding: every promised format and mode, EXIF orientation, transparency, and bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lookalike.pictures.decode import BACKGROUND_RGB, DecodeError, decode_image, sniff_format

from .conftest import make_picture


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "TGA"])
def test_every_promised_format_decodes_to_rgb(fmt):
    picture = make_picture(1, size=(48, 40))
    decoded = decode_image(encode(picture, fmt))
    assert decoded.image.mode == "RGB"
    assert decoded.format == fmt
    if fmt != "ICO":  # ICO stores square sizes only
        assert (decoded.width, decoded.height) == (48, 40)
    if fmt in ("PNG", "BMP", "TIFF", "TGA"):  # lossless: identical pixels
        assert np.array_equal(np.asarray(decoded.image), np.asarray(picture))


def test_transparent_pixels_become_the_neutral_background():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # invisible red
    rgba.putpixel((5, 5), (0, 0, 255, 255))
    decoded = decode_image(encode(rgba, "PNG")).image
    assert decoded.getpixel((0, 0)) == BACKGROUND_RGB
    assert decoded.getpixel((5, 5)) == (0, 0, 255)


def test_palette_with_transparency_and_greyscale_alpha():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    data = encode(palette, "PNG", transparency=0)
    decoded = decode_image(data).image
    assert decoded.getpixel((0, 0)) == BACKGROUND_RGB
    assert decoded.getpixel((1, 1)) == (0, 255, 0)

    la = Image.new("LA", (4, 4), (200, 0))
    assert decode_image(encode(la, "PNG")).image.getpixel((0, 0)) == BACKGROUND_RGB


def test_cmyk_and_16_bit_modes():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    r, g, b = decode_image(encode(cmyk, "JPEG", quality=95)).image.getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60

    deep = Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16))  # 16-bit white
    assert deep.mode.startswith("I;16")
    assert decode_image(encode(deep, "PNG")).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    picture = Image.new("RGB", (40, 20), (255, 0, 0))
    picture.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(picture, "JPEG", exif=exif, quality=95))
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)
    r, g, b = decoded.image.getpixel((10, 5))  # the blue half is now on top
    assert b > 200 and r < 60


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buf.getvalue())
    assert decoded.frames == 3
    r, g, b = decoded.image.getpixel((8, 8))
    assert r > 200 and g < 60


def test_jpeg_draft_mode_reduces_big_pictures_but_keeps_their_true_size():
    big = make_picture(3, size=(2000, 1200))
    decoded = decode_image(encode(big, "JPEG", quality=90), min_size=224)
    assert (decoded.width, decoded.height) == (2000, 1200)
    assert 224 <= max(decoded.image.size) < 2000


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"this is a text file, not a picture\n", "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
    ],
)
def test_unreadable_bytes_raise_a_clear_error(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(data)


def test_truncated_png_and_jpeg_are_errors_not_grey_pictures():
    for fmt in ("PNG", "JPEG"):
        data = encode(make_picture(5, size=(200, 200)), fmt)
        with pytest.raises(DecodeError):
            decode_image(data[: len(data) // 2])


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims another size (a decompression-bomb header)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    body = struct.pack(">II", width, height) + bytes(data[ihdr + 16 : ihdr + 21])
    data[ihdr + 8 : ihdr + 21] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return bytes(data)


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    with pytest.raises(DecodeError, match="too large"):
        decode_image(png_with_header_size(30000, 30000))
    with pytest.raises(DecodeError, match="too large"):
        decode_image(encode(make_picture(1, size=(64, 64)), "PNG"), max_pixels=1000)


def test_sniffing_recognises_formats_by_content():
    assert sniff_format(encode(make_picture(1), "PNG")[:16]) == "PNG"
    assert sniff_format(encode(make_picture(1), "JPEG")[:16]) == "JPEG"
    assert sniff_format(encode(make_picture(1), "WEBP")[:16]) == "WEBP"
    assert sniff_format(b"%PDF-1.7 not an image") is None


def test_big_transparent_sheets_are_shrunk_before_compositing_with_the_right_colours():
    sheet = Image.new("RGBA", (1000, 1600), (255, 0, 0, 0))  # invisible red everywhere
    sheet.paste((0, 0, 255, 255), (0, 0, 500, 1600))  # left half opaque blue
    decoded = decode_image(encode(sheet, "PNG"), min_size=200)
    assert (decoded.width, decoded.height) == (1000, 1600)  # the true size is kept
    assert min(decoded.image.size) >= 400 and max(decoded.image.size) < 1600  # >= 2 x min_size
    w, h = decoded.image.size
    assert decoded.image.getpixel((w // 4, h // 2)) == (0, 0, 255)
    assert decoded.image.getpixel((3 * w // 4, h // 2)) == BACKGROUND_RGB  # no red bleeds in
