"""A corpus of hostile and broken files, built by code, for tests/test_hostile.py.

Each maker returns bytes; `build_corpus` writes them all into one folder, next to a few good
pictures with awkward names. What each file is expected to become is in `EXPECTED`.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

from tests.archive_makers import make_tar, make_zip
from tests.conftest import make_picture


def png(seed: int, size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(seed: int, size=(40, 40), **kwargs) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 20_000) -> bytes:
    """A real, complete 1-bit PNG of side x side white pixels: ~50 KB that would decode to
    400 megapixels (1.2 GB as RGB)."""
    row = b"\0" + b"\xff" * (side // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def png_huge_header(side: int = 30_000) -> bytes:
    """A PNG whose header claims side x side RGB pixels, followed by a few bytes of data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + data + _chunk(b"IEND", b"")


def gif_many_frames(frames: int = 10_000) -> bytes:
    """An animated GIF of `frames` 8x8 frames, written block by block (Pillow would merge
    identical frames): one frame's image data, repeated."""
    single = io.BytesIO()
    from PIL import Image

    Image.new("P", (8, 8), 1).save(single, format="GIF")
    data = single.getvalue()
    descriptor = data.index(b"\x2c")  # first image descriptor, after the global colour table
    frame = data[descriptor:-1]  # descriptor + LZW data, without the trailer
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control extension, 10 ms
    return data[:descriptor] + (control + frame) * frames + b"\x3b"


def jpeg_bad_exif() -> bytes:
    """A JPEG whose APP1 Exif segment is garbage: a TIFF header pointing past its end, and an
    orientation entry of an impossible type."""
    good = jpeg(3)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 0x0112, 99, 0xFFFF, 0xFFFFFFF0)  # Orientation, bad type/count
    tiff += struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFFFF)  # Exif IFD pointer, far away
    tiff += struct.pack("<I", 0xFFFFFF00)  # next IFD, far away
    body = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return good[:2] + segment + good[2:]


def zip_ratio_bomb() -> bytes:
    """~200 KB of zip that inflates to 256 MiB of zeros (about 1000:1)."""
    return make_zip({"ok.png": png(1), "zeros.png": b"\0" * (256 << 20)})


def zip_nested_bomb() -> bytes:
    inner = make_zip({f"zeros{n}.png": b"\0" * (64 << 20) for n in range(2)})
    return make_zip({"a.png": png(2), "inner.zip": inner, "inner2.zip": inner})


def tar_with_links_and_absolute_paths() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in {"fine.png": png(20), "/etc/evil.png": png(21)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, kind, target in (
            ("sym.png", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard.png", tarfile.LNKTYPE, "../../outside.png"),
            ("device.png", tarfile.CHRTYPE, ""),
            ("fifo.png", tarfile.FIFOTYPE, ""),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            archive.addfile(info)
    return buf.getvalue()


def encrypted_zip(path: Path) -> None:
    import libarchive

    with libarchive.file_writer(
        str(path), "zip", options="encryption=zipcrypt", passphrase="pw"
    ) as archive:
        data = png(30)
        archive.add_file_from_memory("secret.png", len(data), data)


def svg_with_external_entity(url: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM "{url}">]>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        "<text>&xxe;</text></svg>\n"
    ).encode()


# name -> what the catalog should say about it: ("indexed", None) or ("failed", error fragment)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "truncated.png": ("failed", "corrupt"),
    "truncated.jpg": ("failed", "corrupt"),
    "zero-bytes.png": ("failed", "empty file"),
    "text-named.jpg": ("failed", "not a recognised image format"),
    "jpeg-named.png": ("indexed", None),  # the name lies; the content decides
    "bomb.png": ("failed", "image too large: 20000x20000"),
    "huge-header.png": ("failed", "image too large: 30000x30000"),
    "bad-exif.jpg": ("indexed", None),  # broken metadata is ignored, the pixels are fine
    "anim-10k.gif": ("indexed", None),  # the first frame is embedded
    "new\nline.png": ("indexed", None),
    "ünïcødé 画像.png": ("indexed", None),
    "100%25 %2e%2e%2fx.png": ("indexed", None),
    "ok-inside.zip": ("indexed", None),  # one member, checked separately
}


def build_corpus(folder: Path, xxe_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = png(10, size=(64, 64))
    files = {
        "truncated.png": good[: len(good) // 2],
        "truncated.jpg": jpeg(11, size=(64, 64))[:300],
        "zero-bytes.png": b"",
        "text-named.jpg": b"just some text\n" * 10,
        "jpeg-named.png": jpeg(12),
        "bomb.png": png_bomb(),
        "huge-header.png": png_huge_header(),
        "bad-exif.jpg": jpeg_bad_exif(),
        "anim-10k.gif": gif_many_frames(),
        "new\nline.png": png(13),
        "ünïcødé 画像.png": png(14),
        "100%25 %2e%2e%2fx.png": png(15),
        "ratio-bomb.zip": zip_ratio_bomb(),
        "nested-bomb.zip": zip_nested_bomb(),
        "traversal.zip": make_zip({"../../escape.png": png(16), "/abs.png": png(17)}),
        "links.tar": tar_with_links_and_absolute_paths(),
        "linked.tar.gz": make_tar({}, links={"up.png": "../../../etc/hostname"}),
        "ok-inside.zip": make_zip({"inside.png": png(18)}),
        "external-entity.svg": svg_with_external_entity(xxe_url),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    encrypted_zip(folder / "encrypted.zip")
    return folder
