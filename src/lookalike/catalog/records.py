"""Plain records the catalog stores and returns: where an image was found, the image, and a
new image row to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

# Who chose a library's model (Library.model_chosen_by, the catalog's meta "model_chosen_by"):
# the user (--model), nobody (the default, which tune may switch), or tune (it did)
ModelChooser = Literal["user", "default", "tune"]

VECTOR_STATUSES = ("embedded", "indexed")  # the image has a vector in the catalog
DONE_STATUSES = (*VECTOR_STATUSES, "failed")  # nothing left to do for it


@dataclass(frozen=True)
class Place:
    """One place an image was found.

    `source` is a file path or URL, always stored decoded (a path, or a URL as a person would
    type it, never percent-encoded twice). `member` is the path inside an archive at `source`,
    or "" for a plain file. The rest is what the place tells about the image, when known.
    """

    source: str
    member: str = ""
    page_url: str | None = None
    title: str | None = None
    author: str | None = None
    licence: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        if not self.member:
            return self.source
        # a sprite of a loose sheet: "sheet.png#tile=x,y,w,h" (see pictures/tiles.py)
        return self.source + ("" if self.member.startswith("#") else "!") + self.member


@dataclass(frozen=True)
class NewImage:
    """An image row to write (`Catalog.put_image`): the identity of its bytes, what decoding
    found, or, with status 'failed', why it could not be decoded.

    `tiny` is its tiny picture (index/tiny.py) and `palette_key` its palette signature
    (pictures/palettes.py); None keeps what the row already has.
    """

    sha256: str
    byte_size: int
    status: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    frames: int | None = None
    error: str | None = None
    pixel_hash: str | None = None
    tiny: bytes | None = None
    palette_key: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    id: int
    sha256: str
    byte_size: int
    width: int | None
    height: int | None
    format: str | None
    frames: int | None
    model: str | None
    status: str
    error: str | None
    pixel_hash: str | None = None  # of the decoded pixels (None for JPEGs decoded in draft)
    places: tuple[Place, ...] = field(default=())

    @property
    def first_place(self) -> Place | None:
        return self.places[0] if self.places else None


def display_url(url: str) -> str:
    """The URL as a person reads it: percent-escapes in the path and query decoded, once.

    This is what the catalog stores as a place's source ("never URL-encoded"); the exact URL
    that was fetched is kept in the downloads table.
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, unquote(parts.path), unquote(parts.query), ""))


@dataclass(frozen=True)
class Filters:
    """Structured conditions, applied inside the vector search (FAISS id selector), so that a
    narrow filter still returns k results rather than the few of the top k that pass."""

    licence: str | None = None  # substring, any case: "cc0", "CC-BY"
    author: str | None = None  # substring, any case
    site: str | None = None  # substring of the source or page URL: "opengameart.org"
    format: str | None = None  # "PNG", "JPEG", ...
    min_width: int | None = None
    min_height: int | None = None

    def active(self) -> bool:
        return any(v not in (None, "") for v in vars(self).values())
