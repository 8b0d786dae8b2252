"""Indexing folders that hold archives: members become places, re-runs skip unchanged archives,
changed archives lose the members they dropped, and bad archives are recorded."""

from __future__ import annotations

import json
from pathlib import Path

from lookalike.catalog import Place
from lookalike.ingest import index_paths
from lookalike.library import Library
from lookalike.sources import ArchiveLimits

from .archive_makers import make_7z, make_rar, make_zip
from .test_archives import png


def export(run_cli) -> list[dict]:
    code, out, _ = run_cli("export", "--format", "jsonl")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def build_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    inner = make_zip({"deep/gem.png": png(13)})
    (folder / "pack.zip").write_bytes(
        make_zip(
            {"hero.png": png(11), "tiles/grass.png": png(12), "inner.zip": inner, "notes.txt": b"x"}
        )
    )
    (folder / "monsters.rar").write_bytes(make_rar({"orc.png": png(14), "bat.png": png(15)}))
    make_7z(folder / "items.7z", {"potion.png": png(16)})
    (folder / "evil.zip").write_bytes(make_zip({"../../escape.png": png(17), "fine.png": png(18)}))
    (folder / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    (folder / "loose.png").write_bytes(png(19))
    return folder


def test_images_inside_archives_are_indexed_as_members(run_cli, tmp_path, library_path):
    folder = build_folder(tmp_path / "art")
    code, _, err = run_cli("index", folder)
    assert code == 0, err
    assert "(5 archives opened)" in err
    rows = {(Path(r["source"]).name, r["member"]): r for r in export(run_cli)}
    assert set(rows) == {
        ("pack.zip", "hero.png"),
        ("pack.zip", "tiles/grass.png"),
        ("pack.zip", "inner.zip!deep/gem.png"),
        ("monsters.rar", "orc.png"),
        ("monsters.rar", "bat.png"),
        ("items.7z", "potion.png"),
        ("evil.zip", "fine.png"),
        ("loose.png", ""),
    }
    assert all(r["status"] == "indexed" for r in rows.values())
    assert "8 added" in err and "2 failed" in err  # the traversal member and broken.zip
    assert "path traversal" in err and "broken.zip" in err

    # a member is found by search, with its archive and member path
    query = tmp_path / "q.png"
    query.write_bytes(png(12))
    _, out, _ = run_cli("search", "--json", "-k", "1", query)
    top = json.loads(out)["results"][0]
    assert (Path(top["source"]).name, top["member"]) == ("pack.zip", "tiles/grass.png")

    with Library.open(library_path) as library:
        assert library.catalog.container_state(str(folder / "pack.zip"))[2] == "done"
        assert library.catalog.container_state(str(folder / "broken.zip"))[2] == "failed"


def test_unchanged_archives_are_not_opened_again(run_cli, tmp_path):
    folder = build_folder(tmp_path / "art")
    run_cli("index", folder)
    code, _, err = run_cli("index", folder)
    assert code == 0
    # 5 archives + loose.png unchanged: no archive opened, nothing failed again
    assert "1 images found: 0 added, 0 already known, 6 unchanged, 0 failed" in err
    assert "archives opened" not in err


def test_a_changed_archive_forgets_members_it_no_longer_holds(run_cli, tmp_path, library_path):
    folder = build_folder(tmp_path / "art")
    run_cli("index", folder)
    (folder / "pack.zip").write_bytes(make_zip({"hero.png": png(11), "new.png": png(20)}))
    code, _, err = run_cli("index", folder)
    assert code == 0, err
    assert "1 added" in err and "1 already known" in err and "2 removed" in err
    members = {r["member"] for r in export(run_cli) if r["source"].endswith("pack.zip")}
    assert members == {"hero.png", "new.png"}

    (folder / "items.7z").unlink()
    code, _, err = run_cli("index", "--prune", folder)
    assert "1 removed" in err
    assert not any(r["source"].endswith("items.7z") for r in export(run_cli))
    with Library.open(library_path) as library:
        assert library.catalog.container_state(str(folder / "items.7z")) is None


def test_a_bomb_fails_its_archive_and_the_run_goes_on(tmp_path, library_path):
    folder = tmp_path / "bombs"
    folder.mkdir()
    (folder / "bomb.zip").write_bytes(make_zip({"a.png": png(1), "zeros.png": b"\0" * (40 << 20)}))
    (folder / "fine.png").write_bytes(png(2))
    limits = ArchiveLimits(ratio_floor=4 << 20, max_ratio=100)
    with Library.open(library_path, write=True) as library:
        report = index_paths(library, [folder], archive_limits=limits, progress=False)
        assert report.failed == 1 and "decompression bomb" in report.errors[0][1]
        sources = {
            p.display
            for r in library.catalog.images(library.catalog.vector_ids()).values()
            for p in r.places
        }
        assert str(folder / "fine.png") in sources
        assert library.catalog.container_state(str(folder / "bomb.zip"))[2] == "failed"


def test_member_places_keep_the_archive_metadata(tmp_path, library_path):
    """Archives found by crawls carry page metadata; their members inherit it."""
    from lookalike.ingest import Indexer
    from lookalike.sources import ArchiveFile, Source

    path = tmp_path / "pack.zip"
    path.write_bytes(make_zip({"a.png": png(1)}))
    place = Place(
        "https://oga.test/files/pack.zip",
        page_url="https://oga.test/content/pack",
        title="Pack",
        author="Ann",
        licence="CC0",
        tags=("fantasy",),
    )

    class One(Source):
        description = "one archive"

        def items(self):
            yield ArchiveFile(place=place, size=path.stat().st_size, mtime_ns=1, path=str(path))

    with Library.open(library_path, write=True) as library:
        Indexer(library, progress=False).run([One()])
        (record,) = library.catalog.images(library.catalog.vector_ids()).values()
    assert record.places[0] == Place(
        place.source, "a.png", place.page_url, "Pack", "Ann", "CC0", ("fantasy",)
    )
