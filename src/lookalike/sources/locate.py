"""Reading an indexed image's bytes back from where it was found.

The catalog keeps places, not copies: a file on disk, a member of an archive (on disk or in the
download cache), or a URL whose body is in the download cache. The first place that still holds
the same bytes (checked by sha256) wins; nothing is fetched from the network here.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path

from lookalike.catalog import DownloadLog, ImageRecord, Place
from lookalike.pictures import Box, DecodeError, decode_image, split_member, tile_sha256

from .archives import ArchiveError, MemoryItem, read_archive
from .base import DEFAULT_MAX_FILE_BYTES
from .http import is_url


class ImageGone(LookupError):
    """None of the image's places holds its bytes any more."""


def read_image_bytes(record: ImageRecord, downloads: DownloadLog, downloads_dir: Path) -> bytes:
    """The image's bytes; for a sprite of a sheet (pictures/tiles.py), its crop of the sheet, as PNG."""
    problems = []
    for place in record.places:
        member, box = split_member(place.member)
        try:
            data = _read_place(replace(place, member=member), downloads, downloads_dir)
            if box is not None:
                data = _sprite_png(data, box, record.sha256)
        except (OSError, ArchiveError, LookupError, DecodeError) as exc:
            problems.append(f"{place.display}: {exc}")
            continue
        if data is not None and (
            box is not None or hashlib.sha256(data).hexdigest() == record.sha256
        ):
            return data
        problems.append(f"{place.display}: changed since it was indexed")
    raise ImageGone("; ".join(problems) or "no place recorded")


def _sprite_png(sheet: bytes, box: Box, sha256: str) -> bytes:
    crop = box.crop(decode_image(sheet, keep_alpha=True).image)
    if tile_sha256(crop) != sha256:
        raise LookupError("the sheet changed since it was indexed")
    out = io.BytesIO()
    crop.save(out, format="PNG")
    return out.getvalue()


def _read_place(place: Place, downloads: DownloadLog, downloads_dir: Path) -> bytes | None:
    path = _local_path(place.source, downloads, downloads_dir)
    if not place.member:
        if path.stat().st_size > DEFAULT_MAX_FILE_BYTES:
            raise LookupError("file too large")
        return path.read_bytes()
    for result in read_archive(str(path), Place(place.source)):
        if isinstance(result, MemoryItem) and result.place.member == place.member:
            return result.data
    raise LookupError(f"no member {place.member!r} in the archive any more")


def _local_path(source: str, downloads: DownloadLog, downloads_dir: Path) -> Path:
    if not is_url(source):
        return Path(source)
    cached = downloads.cached_path(source)
    if cached is None:
        raise LookupError("not in the download cache")
    return downloads_dir / cached
