"""Sprite sheets and tilesets: finding the sprites in a sheet, so that each can be indexed too.

Game art ships frames and tiles packed into one picture. Indexed whole, a sheet looks like
nothing in particular, and a single sprite cut from it will not find it. With
`lookalike index --tiles`, every picture that holds several separate sprites also gets one
catalog image per sprite: its place is the sheet's place with `#tile=x,y,w,h` after the member
name, so a hit on a sprite names the sheet it came from and where in it.

Finding sprites: the foreground is what is not transparent (or, in an opaque picture, what
differs from the colour of its border), split into connected components (OpenCV). Components
whose boxes touch are merged (a sprite's separate parts: a sword, a shadow), tiny specks are
dropped, and a picture with fewer than two sprites is not a sheet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

TILE_MARK = "#tile="
MIN_SIDE = 8  # pixels: smaller components are specks, not sprites
MIN_AREA = 48  # foreground pixels
MAX_TILES = 1024  # per sheet: past this, the smallest are left out
BACKGROUND_TOLERANCE = 24  # per channel, for opaque sheets on a solid colour


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def as_member(self, member: str) -> str:
        return f"{member}{TILE_MARK}{self.x},{self.y},{self.w},{self.h}"

    def crop(self, image: Image.Image) -> Image.Image:
        return image.crop((self.x, self.y, self.x + self.w, self.y + self.h))


def split_member(member: str) -> tuple[str, Box | None]:
    """'sheets/a.png#tile=0,0,32,32' -> ('sheets/a.png', Box(0, 0, 32, 32)); no mark -> None."""
    base, mark, spec = member.rpartition(TILE_MARK)
    if not mark:
        return member, None
    try:
        x, y, w, h = (int(v) for v in spec.split(","))
    except ValueError:
        return member, None
    return base, Box(x, y, w, h)


def tile_sha256(sprite: Image.Image) -> str:
    """A sprite's identity, from its pixels (it has no bytes of its own, only a box in a sheet):
    the same sprite drawn twice in a sheet, or in two sheets, is one image with two places."""
    rgba = sprite.convert("RGBA")
    digest = hashlib.sha256(f"tile:{rgba.width}x{rgba.height}:".encode())
    digest.update(rgba.tobytes())
    return digest.hexdigest()


def find_tiles(image: Image.Image) -> list[Box]:
    """The sprites of a sheet, in reading order; [] when the picture is not a sheet."""
    import cv2

    mask = _foreground(image)
    if mask is None:
        return []
    # Dilating by a pixel joins a sprite's parts that almost touch before the (quadratic) merge
    # of boxes; the boxes are then shrunk back by that pixel.
    grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    height, width = mask.shape
    boxes = [
        [
            max(int(x) + 1, 0),
            max(int(y) + 1, 0),
            min(int(x + w) - 1, width),
            min(int(y + h) - 1, height),
        ]
        for x, y, w, h, area in stats[1:]
        if area >= 16  # a dilated stray pixel covers 9: never a sprite
    ]
    boxes = _merge_touching(boxes)
    tiles = [
        Box(x0, y0, x1 - x0, y1 - y0)
        for x0, y0, x1, y1 in boxes
        if min(x1 - x0, y1 - y0) >= MIN_SIDE and (x1 - x0) * (y1 - y0) >= MIN_AREA
    ]
    if len(tiles) < 2:
        return []
    if len(tiles) > MAX_TILES:
        tiles = sorted(tiles, key=lambda b: -b.w * b.h)[:MAX_TILES]
    return sorted(tiles, key=lambda b: (b.y, b.x))


def _foreground(image: Image.Image) -> np.ndarray | None:
    """uint8 mask (255 = sprite) from alpha, or from the border colour of an opaque picture."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
        if alpha.min() < 128:
            return np.where(alpha >= 128, 255, 0).astype(np.uint8)
    rgb = np.asarray(image.convert("RGB")).astype(np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colours, counts = np.unique(border, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    if counts.max() < 0.8 * len(border):
        return None  # no solid background: a picture, not a sheet
    differs = np.abs(rgb - background).max(axis=2) > BACKGROUND_TOLERANCE
    return np.where(differs, 255, 0).astype(np.uint8)


def _merge_touching(boxes: list[list[int]], gap: int = 1) -> list[list[int]]:
    """Union boxes that overlap or lie within `gap` pixels, until none do."""
    merged = True
    while merged:
        merged = False
        boxes.sort()
        out: list[list[int]] = []
        for box in boxes:
            for other in out:
                if (
                    box[0] <= other[2] + gap
                    and other[0] <= box[2] + gap
                    and box[1] <= other[3] + gap
                    and other[1] <= box[3] + gap
                ):
                    other[0], other[1] = min(other[0], box[0]), min(other[1], box[1])
                    other[2], other[3] = max(other[2], box[2]), max(other[3], box[3])
                    merged = True
                    break
            else:
                out.append(list(box))
        boxes = out
    return boxes
