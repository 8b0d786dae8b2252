"""Images inside archives: zip, rar (4 and 5), 7z and tar (plain, gz, bz2, xz, zstd), nested.

Read with libarchive (Debian's libarchive13, through the libarchive-c binding), member by
member, straight into memory: nothing is ever extracted to disk, so a hostile member name has
no file system to write to. Names are still checked, and refused with a reason, when they are
absolute, climb out with `..`, or are links. Bombs are capped per top-level archive: members
looked at, bytes decompressed, and the ratio of decompressed to compressed bytes, counted as the
bytes actually come out rather than trusted from headers.

Only the archive formats above are enabled: libarchive's catch-all would also read formats such
as mtree, whose entries can name files on the local disk.

A member's place is the archive's place with `member` set to the path inside it; a member of a
nested archive gets `outer/path.zip!inner/path.png`.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import libarchive.ffi as ffi
from libarchive.exception import ArchiveError as LibArchiveError
from libarchive.read import ArchiveRead

from lookalike.catalog import Place
from lookalike.pictures import IMAGE_EXTENSIONS, sniff_format

from .base import DEFAULT_MAX_FILE_BYTES, SourceError, SourceItem

ARCHIVE_EXTENSIONS = (
    ".zip", ".cbz", ".rar", ".cbr", ".7z", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz",
    ".tbz2", ".tar.xz", ".txz", ".tar.zst",
)  # fmt: skip

_FORMATS = ("zip", "rar", "7zip", "tar")
_FILTERS = ("gzip", "bzip2", "xz", "lzma", "zstd")
_NESTED_SEPARATOR = "!"


@dataclass(frozen=True)
class ArchiveLimits:
    max_depth: int = 3  # archives inside archives inside archives, no deeper
    max_members: int = 100_000  # entries looked at, nested ones included
    max_total_bytes: int = 4 << 30  # decompressed bytes read, nested ones included
    max_member_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_ratio: float = 100.0  # decompressed / compressed bytes of one archive...
    ratio_floor: int = 64 << 20  # ...checked once it has produced this much


class ArchiveError(SourceError):
    """The archive as a whole cannot be read (corrupt, a bomb, an unsupported variant)."""


class ArchiveBombError(ArchiveError):
    """A limit on members, bytes or compression ratio was reached: reading stops entirely."""


@dataclass(frozen=True)
class MemoryItem(SourceItem):
    """An image whose bytes are already in memory (read from an archive)."""

    data: bytes = b""

    def read(self, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        if len(self.data) > max_bytes:
            raise SourceError(f"larger than the {max_bytes:,}-byte limit")
        return self.data


@dataclass(frozen=True)
class RefusedMember:
    """A member that was not read, and why (traversal, link, too big, encrypted, ...)."""

    place: Place
    reason: str


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXTENSIONS)


def sniff_archive(header: bytes) -> str | None:
    """The archive format named by a file's first 512 bytes, or None."""
    signatures = (
        (b"PK\x03\x04", "zip"),
        (b"PK\x05\x06", "zip"),  # empty zip
        (b"Rar!\x1a\x07", "rar"),
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"\x1f\x8b", "gzip"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
    )
    for magic, name in signatures:
        if header.startswith(magic):
            return name
    if header[257:262] == b"ustar":
        return "tar"
    return None


@dataclass
class _Budget:
    """What one top-level archive may still cost, shared with the archives nested in it."""

    limits: ArchiveLimits
    members: int = 0
    total_bytes: int = 0

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveBombError(f"more than {self.limits.max_members:,} members")

    def count_bytes(self, n: int) -> None:
        self.total_bytes += n
        if self.total_bytes > self.limits.max_total_bytes:
            raise ArchiveBombError(
                f"more than {self.limits.max_total_bytes:,} bytes once decompressed "
                "(a decompression bomb?)"
            )


@dataclass
class _Reading:
    """State of reading one archive (top-level or nested)."""

    archive: ArchiveRead
    place: Place
    budget: _Budget
    depth: int
    produced: int = 0  # decompressed bytes out of this archive
    refused: list[RefusedMember] = field(default_factory=list)


def read_archive(
    source: str | bytes, place: Place, limits: ArchiveLimits = ArchiveLimits()
) -> Iterator[MemoryItem | RefusedMember]:
    """Every image in the archive (a path, or the bytes of one), nested archives included.

    Yields MemoryItems for images and RefusedMembers for members that were not read. Raises
    ArchiveError when the archive itself cannot be read further; what was yielded before stays
    valid.
    """
    yield from _read(source, place, _Budget(limits), depth=0)


def _read(source: str | bytes, place: Place, budget: _Budget, depth: int):
    try:
        with _open(source) as archive:
            state = _Reading(archive, place, budget, depth)
            for entry in archive:
                yield from _member(state, entry)
    except LibArchiveError as exc:
        raise ArchiveError(f"cannot read archive: {_libarchive_message(exc)}") from None


@contextmanager
def _open(source: str | bytes):
    archive_p = ffi.read_new()
    buffer = None
    try:
        for name in _FORMATS:
            ffi.get_read_format_function(name)(archive_p)
        _support_rar5(archive_p)
        for name in _FILTERS:
            ffi.get_read_filter_function(name)(archive_p)
        if isinstance(source, bytes):
            buffer = ctypes.create_string_buffer(source, len(source))
            ffi.read_open_memory(archive_p, ctypes.cast(buffer, ctypes.c_void_p), len(source))
        else:
            ffi.read_open_filename_w(archive_p, source, 64 * 1024)
        yield ArchiveRead(archive_p, header_codec="utf-8")
    finally:
        ffi.read_free(archive_p)
        del buffer


def _support_rar5(archive_p) -> None:
    # libarchive-c exposes the RAR 4 reader as "rar"; RAR 5 has its own switch (libarchive 3.4+).
    function = getattr(ffi.libarchive, "archive_read_support_format_rar5", None)
    if function is not None:
        function.argtypes = [ctypes.c_void_p]
        function.restype = ctypes.c_int
        function(archive_p)


def _member(state: _Reading, entry) -> Iterator[MemoryItem | RefusedMember]:
    name = _entry_name(entry)
    if entry.isdir or not name:
        return
    state.budget.count_member()
    place = _member_place(state.place, name)
    reason = _unsafe_name(name)
    if reason is None and (entry.issym or entry.islnk):
        reason = f"link to {entry.linkpath!r} refused"
    if reason is None and not entry.isreg:  # devices, FIFOs, sockets: nothing to read
        reason = "not a regular file"
    if reason is None and _is_encrypted(entry):
        reason = "encrypted: lookalike reads no password-protected members"
    if (
        reason is None
        and entry.size is not None
        and entry.size > state.budget.limits.max_member_bytes
    ):
        reason = (
            f"{entry.size:,} bytes, over the {state.budget.limits.max_member_bytes:,}-byte limit"
        )
    if reason:
        yield RefusedMember(place, reason)
        return
    lower = name.lower()
    by_name = (
        "image"
        if lower.endswith(tuple(IMAGE_EXTENSIONS))
        else "archive"
        if is_archive_name(lower)
        else None
    )
    try:
        data = _read_data(state, entry, sniff=by_name is None)
    except _NotACandidate:
        return
    except _MemberTooBig as exc:
        yield RefusedMember(place, str(exc))
        return
    except LibArchiveError as exc:
        yield RefusedMember(place, f"cannot read: {_libarchive_message(exc)}")
        return
    kind = by_name or ("archive" if sniff_archive(data[:512]) else "image")
    if kind == "image":
        yield MemoryItem(place=place, size=None, mtime_ns=None, data=data)
    elif state.depth + 1 > state.budget.limits.max_depth:
        yield RefusedMember(place, f"archive nested deeper than {state.budget.limits.max_depth}")
    else:
        try:
            yield from _read(data, place, state.budget, state.depth + 1)
        except ArchiveBombError:
            raise  # a limit of the top-level archive: stop reading it altogether
        except ArchiveError as exc:
            yield RefusedMember(place, str(exc))


class _NotACandidate(Exception):
    pass


class _MemberTooBig(Exception):
    pass


def _read_data(state: _Reading, entry, *, sniff: bool) -> bytes:
    limits = state.budget.limits
    chunks: list[bytes] = []
    size = 0
    for block in entry.get_blocks():
        if sniff and not chunks:
            head = block[:512]
            if sniff_format(head[:16]) is None and sniff_archive(head) is None:
                raise _NotACandidate
        size += len(block)
        if size > limits.max_member_bytes:
            raise _MemberTooBig(f"larger than the {limits.max_member_bytes:,}-byte limit")
        state.budget.count_bytes(len(block))
        state.produced += len(block)
        _check_ratio(state)
        chunks.append(block)
    return b"".join(chunks)


def _check_ratio(state: _Reading) -> None:
    limits = state.budget.limits
    if state.produced < limits.ratio_floor:
        return
    consumed = max(1, state.archive.bytes_read)
    if state.produced / consumed > limits.max_ratio:
        raise ArchiveBombError(
            f"decompresses more than {limits.max_ratio:.0f}:1 "
            f"({state.produced:,} bytes out of {consumed:,}; a decompression bomb?)"
        )


def _is_encrypted(entry) -> bool:
    function = getattr(ffi.libarchive, "archive_entry_is_data_encrypted", None)
    if function is None:  # libarchive < 3.2: reading the data will fail with a message instead
        return False
    function.argtypes = [ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function(entry._entry_p) == 1


def _entry_name(entry) -> str:
    name = entry.pathname
    if isinstance(name, bytes):  # not UTF-8: old zips use code page 437
        name = name.decode("cp437", errors="replace")
    return name or ""


_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "invalid member name"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return "absolute path refused"
    if ".." in unified.split("/"):
        return "path traversal (..) refused"
    return None


def _member_place(archive_place: Place, name: str) -> Place:
    member = name.replace("\\", "/")
    if archive_place.member:
        member = f"{archive_place.member}{_NESTED_SEPARATOR}{member}"
    return replace(archive_place, member=member)


def _libarchive_message(exc: LibArchiveError) -> str:
    message = exc.args[0] if exc.args else None
    if not message or message == "None":
        return "corrupt or unsupported archive"
    message = re.sub(r"\s*\(errno=.*$", "", str(message))  # drop libarchive's pointer dump
    if "ncrypt" in message or "assphrase" in message:
        return f"encrypted ({message})"
    return message
