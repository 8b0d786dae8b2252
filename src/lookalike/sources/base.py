"""The `Source` interface: where images come from.

A source yields `SourceItem`s: one per candidate image, with the `Place` it was found at, the
size and modification time that let a re-index skip it unchanged, and a way to read its bytes.
Items are small and picklable because decoding runs in worker processes: a worker gets the
item, reads the bytes itself, and only the decoded model input travels back.

A new kind of source (archives, URL lists, a crawler for one site) is one new module here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from lookalike.catalog import Place

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # bigger "images" are refused, not read into memory


class SourceError(OSError):
    """An item could not be read; the message is recorded in the catalog."""


@dataclass(frozen=True)
class SourceItem(ABC):
    place: Place
    size: int | None  # bytes, when known without reading
    mtime_ns: int | None  # modification time, when the source has one

    @abstractmethod
    def read(self, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """The item's bytes; raises SourceError (too large, unreadable, gone)."""


@dataclass(frozen=True)
class SourceProblem:
    """Something a source found but cannot offer as an image (a failed download, a file that
    is not an image); the pipeline reports it with the run's other errors."""

    place: Place
    message: str


@dataclass(frozen=True)
class ArchiveFile(SourceItem):
    """An archive on the local disk (a file, or a download in the cache) whose images are
    indexed as members of `place`. The pipeline opens it; no worker reads it whole."""

    path: str = ""

    def read(self, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        raise SourceError("an archive is read member by member, not whole")


class Source(ABC):
    @abstractmethod
    def items(self) -> Iterator[SourceItem]:
        """Every candidate image, lazily: a source may be far bigger than memory."""

    @property
    @abstractmethod
    def description(self) -> str:
        """What to call this source in progress bars and messages."""
