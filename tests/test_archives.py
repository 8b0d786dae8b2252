"""Archives: every format, nesting, and hostile archives (traversal, links, bombs, encryption)."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

import libarchive
import pytest

from lookalike.catalog import Place
from lookalike.sources.archives import (
    ArchiveBombError,
    ArchiveError,
    ArchiveLimits,
    MemoryItem,
    RefusedMember,
    _open,
    read_archive,
)

from .archive_makers import make_7z, make_rar, make_tar, make_zip
from .conftest import make_picture

RAR_SAMPLES = Path(__file__).parent / "data" / "rar"


def png(seed: int, size=(24, 24)) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=size).save(buf, "PNG")
    return buf.getvalue()


def read_all(source, limits=ArchiveLimits(), place=Place("/art/pack")):
    images, refused = {}, {}
    for result in read_archive(source, place, limits):
        if isinstance(result, MemoryItem):
            images[result.place.member] = result.data
        else:
            assert isinstance(result, RefusedMember)
            refused[result.place.member] = result.reason
    return images, refused


MEMBERS = {"sprites/hero.png": png(1), "sprites/tiles 16px.png": png(2), "README.txt": b"hi"}


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: make_zip(MEMBERS),
        lambda tmp: make_zip(MEMBERS, compression=zipfile.ZIP_STORED),
        lambda tmp: make_tar(MEMBERS, "w"),
        lambda tmp: make_tar(MEMBERS, "w:gz"),
        lambda tmp: make_tar(MEMBERS, "w:bz2"),
        lambda tmp: make_tar(MEMBERS, "w:xz"),
        lambda tmp: make_7z(tmp / "pack.7z", MEMBERS),
        lambda tmp: make_rar(MEMBERS),
    ],
    ids=["zip", "zip-stored", "tar", "tar.gz", "tar.bz2", "tar.xz", "7z", "rar"],
)
def test_every_format_yields_its_images_with_member_paths(tmp_path, make):
    images, refused = read_all(make(tmp_path))
    assert images == {k: v for k, v in MEMBERS.items() if k.endswith(".png")}
    assert refused == {}  # README.txt is simply not an image


def test_archives_are_read_from_disk_and_memory_alike(tmp_path):
    path = tmp_path / "pack.zip"
    path.write_bytes(make_zip(MEMBERS))
    assert read_all(str(path)) == read_all(path.read_bytes())


def test_nested_archives_get_bang_separated_member_paths_and_inherit_metadata():
    inner = make_zip({"deep/x.png": png(3)})
    middle = make_tar({"inner.zip": inner, "y.png": png(4)}, "w:gz")
    outer = make_zip({"middle.tar.gz": middle, "z.png": png(5)})
    place = Place(
        "https://example.org/files/outer.zip", page_url="https://example.org/p", author="Ann"
    )
    results = list(read_archive(outer, place))
    members = {r.place.member for r in results}
    assert members == {"z.png", "middle.tar.gz!y.png", "middle.tar.gz!inner.zip!deep/x.png"}
    assert all(r.place.author == "Ann" and r.place.page_url == place.page_url for r in results)


def test_members_without_an_image_name_are_found_by_content():
    images, _ = read_all(make_zip({"data/blob.bin": png(6), "notes.bin": b"not an image"}))
    assert list(images) == ["data/blob.bin"]


def test_unicode_and_percent_names_survive():
    names = {"Sprites/héros – ä.png": png(7), "files/100%25 done.png": png(8)}
    images, _ = read_all(make_zip(names))
    assert set(images) == set(names)


def test_path_traversal_absolute_paths_and_links_are_refused():
    evil = make_zip(
        {
            "../../etc/x.png": png(1),
            "/abs/y.png": png(2),
            "C:\\win\\z.png": png(3),
            "ok.png": png(4),
        }
    )
    images, refused = read_all(evil)
    assert list(images) == ["ok.png"]
    assert "path traversal" in refused["../../etc/x.png"]
    assert "absolute" in refused["/abs/y.png"] and "absolute" in refused["C:/win/z.png"]

    linked = make_tar({"real.png": png(5)}, "w", links={"link.png": "../../outside.png"})
    images, refused = read_all(linked)
    assert list(images) == ["real.png"] and "link to '../../outside.png'" in refused["link.png"]


def test_real_rar_symlink_traversal_archive_is_refused():
    images, refused = read_all(str(RAR_SAMPLES / "rar5-evil-symlink-traversal.rar"))
    assert images == {} and "link to '..' refused" in refused["up"]


def test_real_rar3_and_rar5_archives_decompress_correctly():
    """rar5-solid / rar5-subdirs are compressed RAR 5 from WinRAR: check every member's CRC32
    against the listing rarfile's test suite ships with them."""
    for name in ("rar5-solid.rar", "rar5-subdirs.rar"):
        expected = {}
        listing = (RAR_SAMPLES / name).with_suffix(".rar.exp").read_text()
        for block in re.split(r"\n(?=R5_FILE:|FILE:)", listing):
            member = re.search(r"^\s*name=(.*)$", block, re.M)
            crc = re.search(r"crc=0x([0-9a-f]{8})", block)
            if member and crc and "is=F" in block:
                expected[member.group(1)] = int(crc.group(1), 16)
        with _open(str(RAR_SAMPLES / name)) as archive:
            got = {e.pathname: zlib.crc32(b"".join(e.get_blocks())) for e in archive if e.isfile}
        assert expected and got == expected


def test_solid_rar3_gives_a_clear_error():
    with pytest.raises(ArchiveError, match="RAR solid archive support unavailable"):
        read_all(str(RAR_SAMPLES / "rar3-solid.rar"))


def test_encrypted_members_are_refused(tmp_path):
    path = tmp_path / "secret.zip"
    with libarchive.file_writer(
        str(path), "zip", options="encryption=zipcrypt", passphrase="pw"
    ) as a:
        a.add_file_from_memory("secret.png", 10, png(1)[:10])
    images, refused = read_all(str(path))
    assert images == {} and refused["secret.png"].startswith("encrypted")


def test_a_zip_bomb_is_stopped_by_the_ratio_limit():
    bomb = make_zip({"ok.png": png(1), "zeros.png": b"\0" * (40 << 20)})  # ~1000:1
    limits = ArchiveLimits(ratio_floor=4 << 20, max_ratio=100)
    with pytest.raises(ArchiveBombError, match="decompresses more than 100:1"):
        read_all(bomb, limits)


def test_a_nested_bomb_stops_the_whole_archive():
    inner = make_zip({"zeros.png": b"\0" * (40 << 20)})
    outer = make_zip({"a.png": png(1), "inner.zip": inner})
    with pytest.raises(ArchiveBombError):
        read_all(outer, ArchiveLimits(ratio_floor=4 << 20, max_ratio=100))


def test_total_bytes_member_count_and_member_size_are_capped():
    many = make_zip({f"m{i}.png": png(i) for i in range(30)})
    with pytest.raises(ArchiveBombError, match="more than 10 members"):
        read_all(many, ArchiveLimits(max_members=10))
    with pytest.raises(ArchiveBombError, match="bytes once decompressed"):
        read_all(many, ArchiveLimits(max_total_bytes=5000))
    images, refused = read_all(many, ArchiveLimits(max_member_bytes=100))
    assert images == {} and all("limit" in r for r in refused.values())


def test_nesting_deeper_than_the_limit_is_refused():
    data = make_zip({"core.png": png(1)})
    for level in range(4):
        data = make_zip({f"level{level}.zip": data})
    images, refused = read_all(data, ArchiveLimits(max_depth=3))
    assert images == {}
    assert any("nested deeper than 3" in r for r in refused.values())
    images, _ = read_all(data, ArchiveLimits(max_depth=5))
    assert list(images) == ["level3.zip!level2.zip!level1.zip!level0.zip!core.png"]


def test_a_truncated_archive_keeps_what_was_read_before_the_damage():
    data = make_zip(
        {"a.png": png(1), "b.png": png(2, size=(300, 300))}, compression=zipfile.ZIP_STORED
    )
    results = []
    with pytest.raises(ArchiveError):
        for r in read_archive(data[: len(data) - 3000], Place("/t.zip")):
            results.append(r)
    assert [r.place.member for r in results if isinstance(r, MemoryItem)] == ["a.png"]


def test_garbage_is_not_an_archive():
    with pytest.raises(ArchiveError, match="cannot read archive"):
        read_all(b"PK\x03\x04" + b"\xff" * 100)
