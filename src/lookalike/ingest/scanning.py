"""What an indexing run reads and, once complete, forgets (mixed into `Indexer`): scanning the
sources for items to decode, skipping places whose size and mtime are unchanged and opening
changed archives; then recording the archives read and dropping the members, files and images
that are gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from lookalike.catalog import DONE_STATUSES
from lookalike.sources import (
    ArchiveError,
    ArchiveFile,
    FolderSource,
    MemoryItem,
    Source,
    SourceItem,
    SourceProblem,
    read_archive,
)

ITEMS_PER_TASK = 8  # amortises inter-process overhead for tiny icons


class Scanning:
    """The scan and the end of a run, for `Indexer`: it supplies the library and catalog, the
    report, `retry_failed`, `archive_limits`, `_archives` (the archives read so far), and
    `_note_error`, `_begin` and `_commit`."""

    # -- scanning ---------------------------------------------------------------------------------

    def _work_chunks(self, sources: list[Source], bar) -> Iterator[list[SourceItem]]:
        chunk: list[SourceItem] = []
        for item in self._candidates(sources):
            chunk.append(item)
            bar.total += 1
            if len(chunk) == ITEMS_PER_TASK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _candidates(self, sources: list[Source]) -> Iterator[SourceItem]:
        """Every item to decode: changed files, and the members of changed archives."""
        for source in sources:
            for item in source.items():
                if isinstance(item, SourceProblem):
                    self._note_error(item.place, item.message)
                    continue
                if isinstance(item, ArchiveFile):
                    yield from self._archive_members(item)
                    continue
                self.report.found += 1
                if self._unchanged(item):
                    self.report.unchanged += 1
                    continue
                yield item

    def _archive_members(self, archive: ArchiveFile) -> Iterator[MemoryItem]:
        state = self.catalog.container_state(archive.place.source)
        if state is not None and archive.size is not None:
            size, mtime_ns, status = state
            if (size, mtime_ns) == (archive.size, archive.mtime_ns) and not (
                status == "failed" and self.retry_failed
            ):
                self.report.unchanged += 1
                return
        self.report.archives += 1
        read = ArchiveRead(archive)
        self._archives.append(read)
        try:
            for result in read_archive(archive.path, archive.place, self.archive_limits):
                if isinstance(result, MemoryItem):
                    self.report.found += 1
                    read.members.add(result.place.member)
                    yield result
                else:
                    read.refused.append(f"{result.place.member}: {result.reason}")
                    self._note_error(result.place, result.reason)
        except ArchiveError as exc:
            read.error = str(exc)
            self._note_error(archive.place, str(exc))

    def _unchanged(self, item: SourceItem) -> bool:
        state = self.catalog.place_state(item.place.source, item.place.member)
        if state is None or item.size is None:
            return False
        _, size, mtime_ns, status = state
        if size != item.size or mtime_ns != item.mtime_ns or status not in DONE_STATUSES:
            return False
        return not (status == "failed" and self.retry_failed)

    # -- finishing --------------------------------------------------------------------------------

    def _finish_archives(self) -> None:
        """Record the archives read in this run, and forget members they no longer hold.

        Done only at the end of a complete run, once every member is committed: an archive
        interrupted half-way is simply read again next time (its members are then known).
        """
        self._begin()
        for read in self._archives:
            source = read.archive.place.source
            if read.error is None:  # a complete listing: what is not in it any more is gone
                stale = [
                    place_id
                    for member, place_id in self.catalog.member_places(source).items()
                    if member not in read.members
                ]
                self.catalog.delete_places(stale)
            problems = ([read.error] if read.error else []) + read.refused
            self.catalog.put_container(
                source,
                read.archive.size,
                read.archive.mtime_ns,
                status="failed" if read.error else "done",
                members=len(read.members),
                error="; ".join(problems)[:4000] or None,
            )
        self._commit()

    def _remove_stale(self, prune_sources: list[Source]) -> None:
        """Forget places whose files vanished (--prune), then images no place points at."""
        self._begin()
        for source in prune_sources:
            if isinstance(source, FolderSource):
                root = str(source.root)
                gone = [
                    place_id
                    for place_id, path in self.catalog.file_places_under(root)
                    if not os.path.exists(path)
                ]
                self.catalog.delete_places(gone)
                self.catalog.delete_containers_under(root, os.path.exists)
        orphans = self.catalog.orphan_ids()
        self.catalog.delete_images(orphans)
        self._commit()
        # The catalog no longer has them; an index saved before this line still does, which
        # the next open's reconciliation would also fix.
        self.library.index.remove(np.array(orphans, dtype=np.int64))
        self.report.removed += len(orphans)


@dataclass
class ArchiveRead:
    """One archive opened in this run: the members it listed, those it refused, and why it
    could not be read in full (None: it could)."""

    archive: ArchiveFile
    members: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    error: str | None = None
