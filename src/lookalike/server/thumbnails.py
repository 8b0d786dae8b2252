"""Thumbnails: made once from the image's bytes, cached as WebP under the library folder."""

from __future__ import annotations

import io
import os
from pathlib import Path

from lookalike.pictures import decode_image

THUMBNAIL_SIZES = (64, 128, 256, 512)
MEDIA_TYPE = "image/webp"


def thumbnail_path(thumbnails_dir: Path, sha256: str, size: int) -> Path:
    return thumbnails_dir / str(size) / sha256[:2] / f"{sha256}.webp"


def make_thumbnail(data: bytes, size: int) -> bytes:
    """A WebP at most `size` pixels on its longer side, transparency kept; small pictures are
    not enlarged (the page scales pixel art up crisply with CSS instead)."""
    image = decode_image(data, min_size=size, keep_alpha=True).image
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=82, method=4)
    return buf.getvalue()


def cached_thumbnail(thumbnails_dir: Path, sha256: str, size: int, load_bytes) -> bytes:
    """The cached thumbnail, or a new one from `load_bytes()` (written aside, then renamed)."""
    path = thumbnail_path(thumbnails_dir, sha256, size)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = make_thumbnail(load_bytes(), size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data
