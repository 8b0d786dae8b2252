"""Build real archives for tests: zip, tar.gz, 7z (written by libarchive) and RAR.

Nothing free writes RAR, so `make_rar` writes the RAR 4 format itself with the "store" method:
a marker block, a main header, one file header (with CRC32) plus data per member, and the end
block, as documented in RAR's technote. libarchive reads these like any WinRAR archive. Real
compressed RAR 3 and RAR 5 archives from rarfile's test suite are in tests/data/rar/.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import libarchive


def make_zip(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def make_tar(
    members: dict[str, bytes], mode: str = "w:gz", *, links: dict[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buf.getvalue()


def make_7z(path: Path, members: dict[str, bytes]) -> bytes:
    with libarchive.file_writer(str(path), "7zip") as archive:
        for name, data in members.items():
            archive.add_file_from_memory(name, len(data), data)
    return path.read_bytes()


def _rar_block(head_type: int, flags: int, body: bytes) -> bytes:
    header = struct.pack("<BHH", head_type, flags, 2 + 1 + 2 + 2 + len(body)) + body
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header


def make_rar(members: dict[str, bytes]) -> bytes:
    """A RAR 4 archive with stored (uncompressed) members; names must be ASCII."""
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += _rar_block(0x73, 0x0000, b"\x00" * 6)  # main header: reserved fields
    dos_time = (2024 - 1980) << 25 | 1 << 21 | 1 << 16  # 2024-01-01 00:00:00
    for name, data in members.items():
        raw_name = name.encode("ascii")
        body = struct.pack(
            "<IIBIIBBHI",
            len(data),  # packed size
            len(data),  # unpacked size
            3,  # host OS: Unix
            zlib.crc32(data),
            dos_time,
            20,  # version needed to extract: 2.0
            0x30,  # method: store
            len(raw_name),
            0o100644,  # Unix file attributes
        )
        out += _rar_block(0x74, 0x8000, body + raw_name)  # 0x8000: data follows the header
        out += data
    out += b"\xc4\x3d\x7b\x00\x40\x07\x00"  # end of archive
    return bytes(out)
