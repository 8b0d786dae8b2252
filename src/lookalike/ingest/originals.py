"""Reading images' originals again from where they were found (`sources/locate.py`): files on
disk, archive members (each archive read once a chunk for all its members), and the download
cache for URLs and crawls; nothing is fetched from the network. For `reindex --model`, and for
the repairs that need the pixels again (reembedding.py).
"""

from __future__ import annotations

import hashlib

import numpy as np
from tqdm import tqdm

from lookalike.catalog import DownloadLog, ImageRecord, Place
from lookalike.library import Library
from lookalike.pictures import DecodeError, decode_image, split_member
from lookalike.sources import ArchiveError, ImageGone, MemoryItem, read_archive, read_image_bytes

READ_CHUNK = 256  # images read together: an archive is opened once per chunk, not per member


class OriginalReader:
    """An image's bytes from its places. The members a chunk wants from an archive are taken
    from one reading of it (work is ordered by archive), so re-embedding a 10,000-member zip
    opens it about 40 times, not 10,000."""

    def __init__(self, library: Library):
        self.downloads = DownloadLog(library.catalog)
        self.downloads_dir = library.downloads_dir
        self._archive: str | None = None
        self._members: dict[str, bytes] = {}

    def start_chunk(self) -> None:
        self._archive, self._members = None, {}

    def read(self, record: ImageRecord, wanted_members: set[tuple[str, str]]) -> bytes:
        for place in record.places:
            if (
                place.member
                and (place.source, place.member) in wanted_members
                and not (
                    split_member(place.member)[1]  # a sprite: cropped from its sheet, below
                )
            ):
                data = self._member(place, wanted_members)
                if data is not None and hashlib.sha256(data).hexdigest() == record.sha256:
                    return data
        # files, the download cache, and what the fast path missed (it says why it fails)
        return read_image_bytes(record, self.downloads, self.downloads_dir)

    def _member(self, place: Place, wanted: set[tuple[str, str]]) -> bytes | None:
        if place.source != self._archive:
            self._archive, self._members = place.source, {}
            try:
                path = place.source
                if path.startswith(("http://", "https://")):
                    cached = self.downloads.cached_path(path)
                    if cached is None:
                        return None
                    path = str(self.downloads_dir / cached)
                for item in read_archive(path, Place(place.source)):
                    if isinstance(item, MemoryItem) and (place.source, item.place.member) in wanted:
                        self._members[item.place.member] = item.data
            except (OSError, ArchiveError, LookupError):
                return None  # the slow path below says what is wrong
        return self._members.pop(place.member, None)


def read_originals(
    library: Library, ids: list[int], unreadable: list, desc: str, progress, **decode
):
    """(id, decoded original) for each of `ids` that can be read, in an order that reads each
    archive once a chunk; those that cannot go to `unreadable` as (id, why)."""
    for image_id, decoded in read_decoded(library, ids, unreadable, desc, progress, **decode):
        yield image_id, decoded.image


def read_decoded(library: Library, ids: list[int], unreadable: list, desc: str, progress, **decode):
    """read_originals, with all that decode_image found (DecodedImage): its pixel hash too."""
    catalog = library.catalog
    todo = in_archive_order(catalog, np.array(ids, dtype=np.int64))
    reader = OriginalReader(library)
    bar = progress_bar(len(todo), desc, progress)
    for records, wanted in record_chunks(catalog, todo):
        reader.start_chunk()
        for record in records:
            bar.update(1)
            try:
                decoded = decode_image(reader.read(record, wanted), **decode)
            except (ImageGone, DecodeError) as exc:
                unreadable.append((record.id, str(exc)))
                continue
            yield record.id, decoded
    bar.close()


def progress_bar(total: int, desc: str, progress: bool | None) -> tqdm:
    """A bar over images; `progress` None: shown on a terminal only."""
    disable = None if progress is None else not progress
    return tqdm(total=total, unit="img", desc=desc, disable=disable, dynamic_ncols=True)


def record_chunks(catalog, todo: list[int]):
    """(records, archive members they want) for READ_CHUNK ids of `todo` at a time."""
    for start in range(0, len(todo), READ_CHUNK):
        chunk = catalog.images(todo[start : start + READ_CHUNK])
        records = [chunk[i] for i in todo[start : start + READ_CHUNK] if i in chunk]
        yield records, {(p.source, p.member) for r in records for p in r.places if p.member}


def in_archive_order(catalog, ids: np.ndarray) -> list[int]:
    """`ids` with the archive members last, grouped by archive in member order, so that each
    chunk of work needs few archives (see OriginalReader)."""
    key = catalog.archive_order()
    return sorted((int(i) for i in ids), key=lambda i: (i in key, key.get(i, ""), i))
