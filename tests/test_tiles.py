"""Sprite sheets: finding the sprites (pictures/tiles.py), indexing them with --tiles, and finding the
sheet from one sprite cut out of it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.catalog import DownloadLog
from lookalike.library import Library
from lookalike.pictures import Box, find_tiles, split_member
from lookalike.search import Searcher
from lookalike.sources import read_image_bytes

from .conftest import make_picture

CELL, SPRITE = 48, 32  # sprites of 32 px centred in 48 px cells


def sprite(seed: int) -> Image.Image:
    """An opaque-edged blob on transparency: a shape that is one connected sprite."""
    picture = make_picture(seed, size=(SPRITE, SPRITE)).convert("RGBA")
    mask = Image.new("L", (SPRITE, SPRITE), 0)
    mask.paste(255, (2, 2, SPRITE - 2, SPRITE - 2))
    picture.putalpha(mask)
    return picture


def sheet(seeds: list[list[int]], background=None) -> Image.Image:
    rows, cols = len(seeds), len(seeds[0])
    image = Image.new("RGBA", (cols * CELL, rows * CELL), background or (0, 0, 0, 0))
    for r, row in enumerate(seeds):
        for c, seed in enumerate(row):
            part = sprite(seed)
            image.alpha_composite(part, (c * CELL + 8, r * CELL + 8))
    return image if background is None else image.convert("RGB")


def expected_boxes(rows: int, cols: int) -> list[Box]:
    return [
        Box(c * CELL + 10, r * CELL + 10, SPRITE - 4, SPRITE - 4)
        for r in range(rows)
        for c in range(cols)
    ]


def test_sprites_on_transparency_are_found_in_reading_order():
    assert find_tiles(sheet([[1, 2, 3], [4, 5, 6]])) == expected_boxes(2, 3)


def test_sprites_on_a_solid_colour_are_found_too():
    assert find_tiles(sheet([[1, 2], [3, 4]], background=(255, 0, 255, 255))) == expected_boxes(
        2, 2
    )


def test_a_picture_is_not_a_sheet():
    assert find_tiles(make_picture(5, size=(200, 150))) == []
    assert find_tiles(sprite(3)) == []  # one sprite alone is not a sheet


def test_parts_of_one_sprite_that_almost_touch_stay_one_sprite():
    image = Image.new("RGBA", (100, 40), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (10, 10, 20, 30))
    image.paste((0, 200, 0, 255), (21, 10, 30, 30))  # a 1-pixel gap: a sword beside a hand
    image.paste((0, 0, 200, 255), (60, 10, 80, 30))
    assert find_tiles(image) == [Box(10, 10, 20, 20), Box(60, 10, 20, 20)]


def test_members_carry_the_box():
    box = Box(3, 4, 5, 6)
    assert split_member(box.as_member("pack/sheet.png")) == ("pack/sheet.png", box)
    assert split_member("plain.png") == ("plain.png", None)


@pytest.fixture
def sheets(tmp_path) -> Path:
    folder = tmp_path / "art"
    folder.mkdir()
    sheet([[11, 12, 13], [14, 15, 11]]).save(folder / "hero.png")  # sprite 11 twice
    sheet([[21, 22], [23, 24]]).save(folder / "monster.png")
    make_picture(99).save(folder / "photo.png")
    return folder


def cut(seed: int) -> bytes:
    """A sprite as someone would cut it from the sheet: its whole cell, margins included."""
    cell = Image.new("RGBA", (CELL, CELL), (0, 0, 0, 0))
    cell.alpha_composite(sprite(seed), (8, 8))
    out = io.BytesIO()
    cell.save(out, format="PNG")
    return out.getvalue()


def test_index_tiles_then_a_cut_sprite_finds_its_sheet(run_cli, sheets, library_path, tmp_path):
    code, _, err = run_cli("index", "--tiles", sheets)
    assert code == 0 and "3 added" in err and "10 sprites from sheets" in err, err
    query = tmp_path / "cut-from-monster.png"
    query.write_bytes(cut(23))
    code, out, _ = run_cli("search", "--json", "-k", "1", query)
    top = json.loads(out)["results"][0]
    assert top["source"].endswith("monster.png")
    member, box = split_member(top["member"])
    assert member == "" and box == Box(10, 58, 28, 28)  # row 2, column 1

    with Library.open(library_path) as library:
        counts = library.catalog.status_counts()
        assert counts == {"indexed": 3 + 9}  # sprite 11 drawn twice in hero.png is one image
        record = library.catalog.image(top["id"])
        assert (
            len(library.catalog.image(_id_of_box(library, "hero.png", Box(10, 10, 28, 28))).places)
            == 2
        )
        data = read_image_bytes(record, DownloadLog(library.catalog), library.downloads_dir)
    assert Image.open(io.BytesIO(data)).size == (28, 28)  # the sprite, cropped from its sheet
    code, _, _ = run_cli("check")
    assert code == 0


def _id_of_box(library: Library, name: str, box: Box) -> int:
    row = library.catalog.conn.execute(
        "SELECT image_id FROM places WHERE source LIKE ? AND member = ?",
        (f"%{name}", box.as_member("")),
    ).fetchone()
    return row[0]


def test_a_changed_sheet_forgets_the_sprites_it_lost(run_cli, sheets, library_path):
    run_cli("index", "--tiles", sheets)
    sheet([[21, 22], [23, 25]]).save(sheets / "monster.png")  # one sprite redrawn
    code, _, err = run_cli("index", "--tiles", sheets)
    assert code == 0 and "4 sprites from sheets" in err
    with Library.open(library_path) as library:
        monster = library.catalog.conn.execute(
            "SELECT COUNT(*) FROM places WHERE source LIKE '%monster.png' AND member != ''"
        ).fetchone()[0]
        assert monster == 4
        assert library.catalog.orphan_ids() == []
    code, _, _ = run_cli("check")
    assert code == 0


def test_without_tiles_sheets_are_indexed_whole(run_cli, sheets, library_path):
    code, _, err = run_cli("index", sheets)
    assert code == 0 and "sprites" not in err
    with Library.open(library_path) as library:
        assert library.catalog.status_counts() == {"indexed": 3}


@pytest.mark.parametrize("model", ["effnet-lite0-grey", "effnet-lite0"])
def test_trim_makes_a_cut_frame_match_its_sprite_exactly(run_cli, sheets, tmp_path, model):
    """`search --trim` cuts a query's transparent margins as --tiles cut the sprites. The
    default model (effnet-lite0@3) trims every picture itself, so there the frame as cut
    matches already; a model that does not (the grey one) needs the option."""
    run_cli("index", "--tiles", "--model", model, sheets)
    query = tmp_path / "frame.png"
    query.write_bytes(cut(14))

    def top(*options):
        code, out, _ = run_cli("search", "--json", "-k", "1", *options, query)
        assert code == 0
        return json.loads(out)["results"][0]

    as_cut, trimmed = top(), top("--trim")
    assert trimmed["source"].endswith("hero.png") and trimmed["score"] > 0.99
    assert trimmed["tier"] in ("exact", "copy")
    if model == "effnet-lite0":
        assert as_cut["source"].endswith("hero.png") and as_cut["score"] > 0.99
    else:
        assert as_cut["score"] < trimmed["score"] - 0.05  # the margin is what held it back
    verified = top("--trim", "--verify")  # turned views and verification see the trimmed sprite
    assert verified["source"].endswith("hero.png") and verified["tier"] in ("exact", "copy")
    assert verified["verification"]["region"] == [0, 0, verified["width"], verified["height"]]


def test_trim_hands_verification_the_trimmed_picture(run_cli, sheets, library_path):
    run_cli("index", "--tiles", sheets)
    with Library.open(library_path) as library:
        framed = Searcher(library).bytes_vector(cut(14)).image
        trimmed = Searcher(library, trim=True).bytes_vector(cut(14)).image
    assert framed.size == (CELL, CELL)
    assert trimmed.size == (SPRITE - 4, SPRITE - 4)  # the sprite's own box, as --tiles cut it


def test_eval_sprites_measures_cut_sprites_against_their_sheets(run_cli, tmp_path):
    dataset = tmp_path / "sheets"
    dataset.mkdir()
    layouts = {"a.png": [[31, 32, 33]], "b.png": [[34, 35], [36, 37]], "c.png": [[38, 39]]}
    for name, seeds in layouts.items():
        sheet(seeds).save(dataset / name)
    noise = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).save(dataset / "photo.png")  # no solid background: not a sheet
    (dataset / "groundtruth.csv").write_text(
        "path,group,category,role\n" + "".join(f"{n},g,c,\n" for n in [*layouts, "photo.png"])
    )
    code, out, err = run_cli("eval", "--sprites", "--json", dataset)
    assert code == 0, err
    report = json.loads(out)
    assert report["sheets"] == 3 and report["queries"] == 8  # 3 + 3 + 2 sprites cut
    assert report["images"] == {"whole": 3, "tiled": 3 + 9}
    runs = {(r["tiles"], r["trim"]): r for r in report["runs"]}
    assert runs[(True, True)]["recall_at_1"] == 1.0  # trimmed, a cut sprite is its sprite
    assert runs[(False, False)]["recall_at_10"] == 1.0  # three sheets: all are in the ten
