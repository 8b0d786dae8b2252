"""Images and archives of images in a folder tree (or one file) on the local disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.catalog import Place
from lookalike.pictures import IMAGE_EXTENSIONS, sniff_format

from .archives import is_archive_name, sniff_archive
from .base import DEFAULT_MAX_FILE_BYTES, ArchiveFile, Source, SourceError, SourceItem


@dataclass(frozen=True)
class FileItem(SourceItem):
    path: str = ""

    def read(self, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        try:
            with open(self.path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise SourceError(f"file larger than the {max_bytes:,}-byte limit")
        return data


class FolderSource(Source):
    """Every image file and archive under `root`, recursively; `root` may also be a single file.

    A file is a candidate when its extension is an image or archive extension, or when its first
    bytes are an image or archive signature (so a PNG saved as `.dat` is still found). Symbolic links to folders
    are not followed (they can loop); `exclude` folders (the library itself) are skipped.
    """

    def __init__(self, root: Path, *, exclude: tuple[Path, ...] = ()):
        self.root = Path(os.path.abspath(root))
        self._exclude = {os.path.abspath(p) for p in exclude}

    @property
    def description(self) -> str:
        return str(self.root)

    def items(self) -> Iterator[FileItem | ArchiveFile]:
        if self.root.is_file():
            item = self._item(str(self.root), self.root.stat(), check_content=False)
            if item:
                yield item
            return
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such file or folder: {self.root}")
        yield from self._walk(str(self.root))

    def _walk(self, folder: str) -> Iterator[FileItem | ArchiveFile]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return  # unreadable folder: skip it, as `find` would
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in self._exclude:
                        yield from self._walk(entry.path)
                elif entry.is_file():
                    item = self._item(entry.path, entry.stat(), check_content=True)
                    if item:
                        yield item
            except OSError:
                continue  # vanished while we looked, or a broken link

    def _item(
        self, path: str, stat: os.stat_result, *, check_content: bool
    ) -> FileItem | ArchiveFile | None:
        kind = (
            file_kind(path) if check_content else ("archive" if is_archive_name(path) else "image")
        )
        if kind is None:
            return None
        item_type = ArchiveFile if kind == "archive" else FileItem
        return item_type(
            place=Place(source=path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, path=path
        )


def file_kind(path: str, *, by_content: bool = False) -> str | None:
    """Whether `path` is an "image" or an "archive" (or None): by its name, else by its
    first bytes. With `by_content`, the first bytes decide, and the name only for what has no
    signature (TGA). Downloads use it: a URL ending in .png may well serve an HTML page.
    """
    ext = os.path.splitext(path)[1].lower()
    if not by_content:
        if ext in IMAGE_EXTENSIONS:
            return "image"
        if is_archive_name(path):
            return "archive"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if sniff_format(head[:16]):
        return "image"
    if sniff_archive(head):
        return "archive"
    if by_content and ext == ".tga":
        return "image"
    return None
