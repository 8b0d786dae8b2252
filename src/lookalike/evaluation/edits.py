"""The edited copies that `lookalike eval --copies` searches for: crops, rescales, JPEG and WebP
re-saves, colour and hue changes, greyscale, mirrors, turns, text, borders, and two combined,
each drawn from a seeded generator so that a run can be repeated exactly."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from lookalike.pictures import turn_hue

TRANSFORMS = (
    "crop", "rescale", "jpeg", "colour", "hue", "grey", "flip", "rotate90", "text", "border",
    "combined",
)  # fmt: skip


CROP_TRIES = 10  # crops drawn before one that shows some of the picture is found


def make_copy(image: Image.Image, transform: str, rng: random.Random) -> tuple[bytes, str]:
    """(encoded bytes, description) of one edited copy of an RGB picture."""
    if transform == "combined":
        picked = rng.sample([t for t in TRANSFORMS if t not in ("combined", "jpeg")], 2)
        steps = []
        for name in picked:
            image, note = _edit(image, name, rng)
            steps.append(note)
        data, note = _encode(image, rng, jpeg=rng.random() < 0.5)
        return data, " + ".join(steps + ([note] if note else []))
    image, note = _edit(image, transform, rng)
    data, jpeg_note = _encode(image, rng, jpeg=transform == "jpeg")
    return data, note or jpeg_note


def _edit(image: Image.Image, name: str, rng: random.Random) -> tuple[Image.Image, str]:
    w, h = image.size
    if name == "crop":
        # A crop of nothing but background (a 32 px tile's empty corner) is not a copy of the
        # picture: it is every blank tile of the set, pixel for pixel. Drawn again.
        for _ in range(CROP_TRIES):
            fw, fh = rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)
            cw, ch = max(1, round(w * fw)), max(1, round(h * fh))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            cropped = image.crop((x, y, x + cw, y + ch))
            if not _one_colour(cropped):
                break
        return cropped, f"crop {fw:.0%}x{fh:.0%}"
    if name == "rescale":
        f = rng.uniform(0.25, 2.0)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        return image.resize(size, Image.LANCZOS), f"rescale {f:.2f}x"
    if name == "colour":
        b, c, s = (rng.uniform(0.7, 1.3) for _ in range(3))
        image = ImageEnhance.Brightness(image).enhance(b)
        image = ImageEnhance.Contrast(image).enhance(c)
        return ImageEnhance.Color(image).enhance(s), f"colour jitter {b:.2f}/{c:.2f}/{s:.2f}"
    if name == "hue":
        shift = rng.randint(30, 180)
        return turn_hue(np.asarray(image.convert("HSV")), shift * 255 // 360), f"hue +{shift}°"
    if name == "grey":
        return image.convert("L").convert("RGB"), "greyscale"
    if name == "flip":
        return ImageOps.mirror(image), "flip"
    if name == "rotate90":
        return image.rotate(90 * rng.choice((1, 3)), expand=True), "rotate 90°"
    if name == "text":
        image = image.copy()
        size = max(6, min(w, h) // 6)
        font = ImageFont.load_default(size=size)
        draw = ImageDraw.Draw(image)
        x, y = rng.randint(0, max(0, w - size * 4)), rng.randint(0, max(0, h - size))
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.text((x, y), "© copy", fill=colour, font=font)
        return image, "added text"
    if name == "border":
        frac = rng.uniform(0.05, 0.15)
        pad = max(1, round(max(w, h) * frac))
        colour = tuple(rng.randrange(256) for _ in range(3))
        return ImageOps.expand(image, border=pad, fill=colour), f"border {frac:.0%}"
    if name == "jpeg":
        return image, ""
    raise ValueError(name)


def _one_colour(image: Image.Image) -> bool:
    return all(low == high for low, high in image.getextrema())


def _encode(image: Image.Image, rng: random.Random, *, jpeg: bool) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if jpeg:
        quality = rng.randint(10, 50)
        image.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), f"JPEG q{quality}"
    image.save(buf, "PNG")
    return buf.getvalue(), ""
