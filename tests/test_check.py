"""`lookalike check [--repair]`: each kind of damage is found, and repaired where it can be."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.index import FaissIndex
from lookalike.library import Library
from lookalike.search import Searcher


def check(run_cli, *args) -> tuple[int, dict]:
    code, out, _ = run_cli("check", "--json", *args)
    return code, json.loads(out)


def messages(report: dict) -> str:
    return "\n".join(f"{f['severity']}: {f['area']}: {f['message']}" for f in report["findings"])


@pytest.fixture
def indexed(run_cli, picture_folder, library_path):
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    return library_path


def sql(library_path, statement: str, *params, foreign_keys: bool = True) -> None:
    conn = sqlite3.connect(library_path / "catalog.sqlite3")
    conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def test_a_fresh_library_passes(run_cli, indexed):
    code, report = check(run_cli)
    assert code == 0 and report["ok"], messages(report)
    assert report["counts"]["in index"] == report["counts"]["vectors"] == 12
    assert report["counts"]["self-search hits %"] == 100
    assert report["findings"] == []


def test_an_unreadable_index_is_found_and_rebuilt(run_cli, indexed):
    (indexed / "index.faiss").write_bytes(b"not a faiss index at all")
    code, report = check(run_cli)
    assert code == 1 and "index.faiss cannot be read" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["ok"], messages(report)
    assert any("rebuilt the index" in line for line in report["repaired"])
    assert report["counts"]["in index"] == 12


def test_index_ids_the_catalog_does_not_know_and_indexed_images_it_lacks(run_cli, indexed):
    index = FaissIndex.load(indexed / "index.faiss")
    ids = index.ids()
    index.remove(ids[:2])  # two 'indexed' images lost
    stray = np.random.default_rng(0).standard_normal((1, index.dim)).astype(np.float32)
    index.add(np.array([9999]), stray / np.linalg.norm(stray))  # one id nobody knows
    index.save(indexed / "index.faiss")
    code, report = check(run_cli)
    text = messages(report)
    assert code == 1
    assert "1 ids in the index are not in the catalog" in text
    assert "2 images marked indexed are not in the index" in text
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["counts"]["in index"] == 12


def test_scrambled_vectors_in_the_index_fail_the_self_search(run_cli, indexed):
    """Ids all present, but each attached to another image's vector: only searching shows it."""
    with Library.open(indexed) as library:
        ids, vectors = library.catalog.vectors(library.catalog.vector_ids())
    scrambled = FaissIndex.build(np.roll(ids, 1), vectors)
    scrambled.save(indexed / "index.faiss")
    code, report = check(run_cli)
    assert code == 1 and "found only" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["counts"]["self-search hits %"] == 100


def test_unsound_vectors_are_dropped_and_embedded_again_by_the_next_run(
    run_cli, indexed, picture_folder
):
    sql(indexed, "UPDATE vectors SET vector = zeroblob(100) WHERE image_id = 3")  # wrong size
    sql(indexed, "UPDATE vectors SET vector = zeroblob(2560) WHERE image_id = 4")  # all zeros
    sql(indexed, "DELETE FROM vectors WHERE image_id = 5")  # 'indexed' without a vector
    code, report = check(run_cli)
    text = messages(report)
    assert code == 1
    assert "1 vectors are not 1280-dimensional" in text
    assert "1 vectors are not finite unit vectors" in text
    assert "1 images marked embedded or indexed have no vector" in text
    code, report = check(run_cli, "--repair")
    assert code == 0, messages(report)
    assert report["counts"]["images decoded"] == 3 and report["counts"]["in index"] == 9
    # the next index run embeds exactly those three again
    code, _, err = run_cli("index", picture_folder)
    assert code == 0 and "3 added" in err, err
    code, report = check(run_cli)
    assert code == 0 and report["counts"]["in index"] == 12
    assert report["counts"]["images indexed"] == 12


def _details(library_path, ids):
    with Library.open(library_path) as library:
        return library.catalog.details(ids, library.embedder.detail_dim)


def test_damaged_details_are_found_dropped_and_made_again(run_cli, indexed, picture_folder):
    """Details (kept for the learned ranking) of the wrong length are damage, and not finite
    ones as good as missing: search reads both as missing, check reports them, and repair
    drops the damaged ones and makes all of them again from the originals; the vectors stay."""
    _, before = _details(indexed, [2, 6, 7])
    sql(indexed, "UPDATE vectors SET detail = zeroblob(10) WHERE image_id IN (2, 6)")
    nan = np.full(before.shape[1], np.nan, np.float16).tobytes()
    sql(indexed, "UPDATE vectors SET detail = ? WHERE image_id = 7", nan)
    code, out, err = run_cli("search", "--json", str(picture_folder / "pic02.png"))
    assert code == 0 and json.loads(out)["results"][0]["tier"] == "exact"
    code, report = check(run_cli)
    text = messages(report)
    assert code == 1 and "2 images have details of the wrong length" in text
    assert "warning: vectors: 1 images have no sound details" in text
    code, report = check(run_cli, "--repair")
    assert code == 0, messages(report)
    repaired = " ".join(report["repaired"])
    assert "dropped 2 damaged details" in repaired and "made the details of 3 images" in repaired
    assert report["counts"]["in index"] == 12
    having, after = _details(indexed, [2, 6, 7])
    assert having.tolist() == [2, 6, 7] and np.allclose(after, before, atol=2e-3)
    code, report = check(run_cli)
    assert code == 0 and report["findings"] == []


def test_details_of_an_image_whose_original_is_gone_stay_missing(run_cli, indexed, picture_folder):
    sql(indexed, "UPDATE vectors SET detail = NULL WHERE image_id IN (1, 2)")
    with Library.open(indexed) as library:
        gone = library.catalog.images([1])[1].places[0].source
    Path(gone).unlink()
    code, report = check(run_cli, "--repair")
    repaired = " ".join(report["repaired"])
    assert "made the details of 1 images; 1 could not be read" in repaired, repaired
    assert _details(indexed, [1, 2])[0].tolist() == [2]
    text = messages(check(run_cli)[1])
    assert "1 images have no sound details" in text and "1 files" in text, text


def test_dangling_rows_are_removed(run_cli, indexed):
    sql(
        indexed,
        "INSERT INTO places (image_id, source, first_seen, last_seen) VALUES (777, 'x', 0, 0)",
        foreign_keys=False,
    )
    code, report = check(run_cli)
    assert code == 1 and "1 rows of places point at no image" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["counts"]["places"] == 12


def test_a_damaged_catalog_is_reported_not_repaired(run_cli, indexed):
    path = indexed / "catalog.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data) - page, 2 * page):  # every other page after the header
        data[start : start + page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    index_before = (indexed / "index.faiss").read_bytes()
    code, report = check(run_cli, "--repair")
    assert code == 1 and not report["ok"]
    assert "recover" in messages(report) and report["repaired"] == []
    assert (indexed / "index.faiss").read_bytes() == index_before  # nothing rebuilt from it


def test_missing_source_files_are_a_warning(run_cli, indexed, picture_folder):
    (picture_folder / "pic01.png").unlink()
    code, report = check(run_cli)
    assert code == 0 and report["ok"]
    assert "1 files or archives that places point at are gone" in messages(report)
    code, report = check(run_cli, "--no-files")
    assert report["findings"] == []


def test_check_waits_for_no_writer(run_cli, indexed):
    with Library.open(indexed, write=True):
        code, _, err = run_cli("check")
    assert code == 1 and "is being written by" in err


def test_left_over_temporary_index_is_removed(run_cli, indexed):
    (indexed / "index.faiss.tmp").write_bytes(b"half a save")
    code, report = check(run_cli)
    assert code == 0 and "interrupted save" in messages(report)
    code, report = check(run_cli, "--repair")
    assert not (indexed / "index.faiss.tmp").exists() and report["findings"] == []


def test_a_library_whose_creation_was_interrupted_passes_with_a_warning(run_cli, library_path):
    """Found by the kill trials: killed after the catalog file appeared, before its schema."""
    library_path.mkdir()
    sqlite3.connect(library_path / "catalog.sqlite3").close()  # an empty SQLite file
    code, report = check(run_cli)
    assert code == 0 and "creation was interrupted" in messages(report)


def test_an_older_schema_is_upgraded_by_repair(run_cli, indexed):
    for table in ("pending_deletes", "staged_vectors"):  # what v4 and v5 added
        sql(indexed, f"DROP TABLE {table}")
    sql(indexed, "ALTER TABLE images DROP COLUMN tiny")  # what v6 added
    sql(indexed, "ALTER TABLE vectors DROP COLUMN detail")  # and v7
    sql(indexed, "ALTER TABLE images DROP COLUMN palette_key")  # and v8
    sql(indexed, "PRAGMA user_version = 3")
    code, report = check(run_cli)
    assert code == 0 and "schema v3" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["findings"] == [] and report["counts"]["in index"] == 12
    assert "made 12 tiny pictures" in report["repaired"]  # v6 came after these images
    assert "hashed the pixels of 12 images again" in report["repaired"]  # and v9


def test_a_hot_journal_left_by_a_kill_is_recovered_not_reported_as_damage(library_path):
    """Found by the kill trials: a kill while the catalog was being created can leave a hot
    rollback journal, which a read-only connection cannot roll back ("attempt to write a
    readonly database"). check opens the catalog as a writer (it holds the lock) and recovers."""
    library_path.mkdir()
    writer = (
        "import sqlite3, time\n"
        "c = sqlite3.connect('catalog.sqlite3', isolation_level=None)\n"
        "c.execute('PRAGMA cache_size = 10')\n"  # spill pages to the file mid-transaction
        "c.execute('BEGIN'); c.execute('CREATE TABLE t (x)')\n"
        "for _ in range(2000): c.execute('INSERT INTO t VALUES (?)', (b'x' * 1000,))\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer], cwd=library_path, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    assert (library_path / "catalog.sqlite3-journal").stat().st_size > 0
    done = subprocess.run(
        [sys.executable, "-m", "lookalike", "-L", str(library_path), "check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "creation was interrupted" in done.stderr


def test_missing_or_damaged_tiny_pictures_are_made_again_by_repair(run_cli, indexed):
    """A library indexed before schema v6 has no tiny pictures (index/tiny.py); one row's is
    damaged. check warns; --repair reads the originals again and makes the same ones."""
    conn = sqlite3.connect(indexed / "catalog.sqlite3")
    made = dict(conn.execute("SELECT id, tiny FROM images").fetchall())
    conn.close()
    sql(indexed, "UPDATE images SET tiny = NULL WHERE id > 2")
    sql(indexed, "UPDATE images SET tiny = x'0102' WHERE id = 1")
    code, report = check(run_cli)
    assert code == 0 and "11 images have no sound tiny picture" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and report["findings"] == [], messages(report)
    assert "made 11 tiny pictures" in report["repaired"]
    conn = sqlite3.connect(indexed / "catalog.sqlite3")
    assert dict(conn.execute("SELECT id, tiny FROM images").fetchall()) == made
    conn.close()


def test_repair_makes_the_tiny_pictures_it_can_and_says_which_it_cannot(
    run_cli, indexed, picture_folder
):
    """Originals gone or replaced by garbage since indexing: their tiny pictures (and pixel
    hashes from before schema v9) cannot be made; the others are, the report says why, and
    every image stays searchable, the unread ones without a pixel hash (an old one, trusted
    alone now, could make a palette swap exact)."""
    sql(indexed, "UPDATE images SET tiny = NULL")
    sql(indexed, "UPDATE images SET pixel_hash = 'stored form'")
    sql(indexed, "INSERT INTO meta VALUES ('stored_form_pixel_hashes_up_to', '12')")
    (picture_folder / "pic01.png").unlink()
    (picture_folder / "pic02.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture any more")
    code, report = check(run_cli, "--repair")
    assert code == 0, messages(report)
    [made] = [line for line in report["repaired"] if "tiny pictures" in line]
    assert made.startswith("made 10 tiny pictures; 2 could not be read, e.g. ")
    assert "2 images have no sound tiny picture" in messages(report)  # still, and said so
    [hashed] = [line for line in report["repaired"] if "pixels" in line]
    assert hashed.startswith("hashed the pixels of 10 images again; 2 could not be read")
    conn = sqlite3.connect(indexed / "catalog.sqlite3")
    hashes = [h for (h,) in conn.execute("SELECT pixel_hash FROM images")]
    assert hashes.count(None) == 2 and "stored form" not in hashes
    assert report["counts"]["in index"] == report["counts"]["vectors"] == 12


def test_pixel_hashes_from_before_v9_are_made_again_by_repair(
    run_cli, picture_folder, library_path
):
    """Before schema v9 a palette sprite was hashed by its palette and indices, so the same
    sprite saved as an RGB PNG was no exact match; repair hashes such images again."""
    sprite = Image.new("P", (24, 24))
    sprite.putpalette([0, 0, 0, 200, 30, 30, 250, 120, 120] + [0] * 759)
    for i in range(24):
        for j in range(24):
            sprite.putpixel((i, j), (i // 8 + j // 6) % 3)
    sprite.save(picture_folder / "sprite.png")
    code, _, err = run_cli("index", picture_folder)
    assert code == 0, err
    resaved = io.BytesIO()
    sprite.convert("RGB").save(resaved, "PNG")

    def tier_of_the_resaved_sprite() -> str:
        with Library.open(library_path) as library:
            searcher = Searcher(library)
            [top] = searcher.search_vector(searcher.bytes_vector(resaved.getvalue()), 1)
            assert top.record.first_place.source.endswith("sprite.png")
            return top.tier

    assert tier_of_the_resaved_sprite() == "exact"
    # as a library indexed before v9 has them: hashes of the stored form, and the key the
    # migration leaves
    sql(library_path, "UPDATE images SET pixel_hash = 'stored form ' || id")
    sql(library_path, "INSERT INTO meta VALUES ('stored_form_pixel_hashes_up_to', '13')")
    assert tier_of_the_resaved_sprite() != "exact"
    code, report = check(run_cli)
    assert code == 0 and "13 images were hashed before schema v9" in messages(report)
    code, report = check(run_cli, "--repair")
    assert code == 0 and "hashed the pixels of 13 images again" in report["repaired"]
    assert report["findings"] == []
    assert tier_of_the_resaved_sprite() == "exact"
