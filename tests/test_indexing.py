"""Indexing folders end to end through the CLI: incremental runs, prune, bad files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PIL import Image

from lookalike.library import Library

from .conftest import make_picture, save_picture


def export_jsonl(run_cli) -> list[dict]:
    code, out, _ = run_cli("export", "--format", "jsonl")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def consistent(library_path: Path) -> Library:
    """Open the library and check that catalog, index and statuses agree."""
    library = Library.open(library_path)
    catalog_ids = set(library.catalog.vector_ids().tolist())
    assert set(library.index.ids().tolist()) == catalog_ids
    counts = library.catalog.status_counts()
    assert counts.get("decoded", 0) == 0
    assert counts.get("indexed", 0) + counts.get("embedded", 0) == len(catalog_ids)
    return library


def test_index_then_search_finds_each_image_first(run_cli, picture_folder, library_path):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    assert "12 added" in err
    code, out, _ = run_cli("search", "--json", picture_folder / "pic03.png", "-k", "3")
    assert code == 0
    (line,) = out.splitlines()
    result = json.loads(line)
    top = result["results"][0]
    assert top["source"] == str(picture_folder / "pic03.png")
    assert top["score"] > 0.99
    with consistent(library_path) as library:
        assert library.catalog.status_counts() == {"indexed": 12}


def test_reindex_skips_unchanged_files_and_embeds_nothing_twice(
    run_cli, picture_folder, library_path
):
    run_cli("index", picture_folder)
    code, _, err = run_cli("index", picture_folder)
    assert code == 0
    assert "0 added" in err and "12 unchanged" in err

    # a copy under a new name: same bytes, so a second place of the same image
    shutil.copy(picture_folder / "pic01.png", picture_folder / "copy of pic01.png")
    # new content in an existing file: embedded anew, the old image is dropped
    save_picture(picture_folder / "pic02.png", 1002)
    # touched but unchanged bytes: re-read and re-hashed, not re-embedded
    os.utime(picture_folder / "pic04.png", ns=(1, 1))
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    assert "1 added, 2 already known, 10 unchanged, 0 failed, 1 removed" in err

    rows = export_jsonl(run_cli)
    places_of = {}
    for row in rows:
        places_of.setdefault(row["id"], []).append(Path(row["source"]).name)
    assert sorted(places_of.values(), key=len)[-1] == ["pic01.png", "copy of pic01.png"]
    assert len(places_of) == 12
    consistent(library_path).close()


def test_prune_forgets_vanished_files_only_when_asked(run_cli, picture_folder, library_path):
    run_cli("index", picture_folder)
    shutil.rmtree(picture_folder / "sub folder")
    code, _, err = run_cli("index", picture_folder)
    assert "0 removed" in err
    code, _, err = run_cli("index", "--prune", picture_folder)
    assert code == 0 and "2 removed" in err
    with consistent(library_path) as library:
        assert len(library.index) == 10


def test_bad_files_are_recorded_with_their_error_and_the_run_goes_on(
    run_cli, picture_folder, library_path
):
    good = (picture_folder / "pic05.png").read_bytes()
    (picture_folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (picture_folder / "empty.jpg").write_bytes(b"")
    (picture_folder / "notes.png").write_text("I am text pretending to be a PNG\n")
    (picture_folder / "README.txt").write_text("not an image and not named like one\n")
    save_picture(picture_folder / "disguised.dat", 77, save={"format": "PNG"})

    code, _, err = run_cli("index", picture_folder)
    assert code == 0
    assert "13 added" in err and "3 failed" in err  # 12 + disguised.dat; README.txt not a candidate

    rows = {Path(r["source"]).name: r for r in export_jsonl(run_cli)}
    assert "README.txt" not in rows
    assert rows["disguised.dat"]["status"] == "indexed"
    assert rows["empty.jpg"]["status"] == "failed" and "empty file" in rows["empty.jpg"]["error"]
    assert rows["notes.png"]["error"] == "decode: not a recognised image format"
    assert rows["truncated.png"]["error"].startswith("decode: corrupt")

    # failed files are not retried on every run, only on request
    code, _, err = run_cli("index", picture_folder)
    assert "0 failed" in err and "16 unchanged" in err
    code, _, err = run_cli("index", "--retry-failed", picture_folder)
    assert "3 failed" in err
    consistent(library_path).close()


def test_animated_transparent_and_odd_mode_files_index(run_cli, tmp_path, library_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    frames = [make_picture(s, size=(40, 40)) for s in (1, 2)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    sprite = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    sprite.paste(make_picture(3, size=(16, 16)), (8, 8))
    sprite.save(folder / "sprite.png")
    make_picture(4).convert("CMYK").save(folder / "print.jpg")
    make_picture(5).save(folder / "tile.tga")
    make_picture(6).save(folder / "icon.ico")
    code, _, err = run_cli("index", folder)
    assert code == 0 and "5 added" in err and "0 failed" in err, err
    formats = sorted(r["format"] for r in export_jsonl(run_cli))
    assert formats == ["GIF", "ICO", "JPEG", "PNG", "TGA"]


def test_a_deleted_index_file_is_rebuilt_from_the_catalog(run_cli, picture_folder, library_path):
    run_cli("index", picture_folder)
    (library_path / "index.faiss").unlink()
    code, out, _ = run_cli("search", "--json", picture_folder / "pic07.png", "-k", "1")
    assert code == 0
    assert json.loads(out)["results"][0]["source"].endswith("pic07.png")
    code, _, err = run_cli("reindex")
    assert code == 0 and "12 vectors, flat" in err
    assert (library_path / "index.faiss").exists()


def test_the_scan_goes_on_when_workers_finish_everything_in_flight(
    tmp_path, library_path, monkeypatch
):
    """Workers can finish every task in flight before the main process waits again (known
    files take them microseconds; the main process may be busy embedding). The scan must still
    go on to the end: it once stopped there, silently. A delayed `wait` forces that timing."""
    import time

    from lookalike.ingest import pipeline as indexing
    from lookalike.ingest import workers

    real_wait = workers.wait

    def late_wait(futures, **kwargs):
        time.sleep(0.05)  # by now every task in flight is done
        return real_wait(futures, **kwargs)

    monkeypatch.setattr(workers, "wait", late_wait)
    folder = tmp_path / "many"
    for seed in range(100):
        save_picture(folder / f"p{seed:03d}.png", 500 + seed, size=(16, 16))
    with Library.open(library_path, write=True) as library:
        report = indexing.index_paths(library, [folder], workers=1, progress=False)
        assert report.found == report.added == 100
        assert len(library.index) == 100
