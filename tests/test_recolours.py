"""Palette swaps (tuning/recolours.py): the key they share, the share tune counts, the switch to a
recolour-blind model it makes for a library whose model nobody chose, and its note."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.cli import main as cli_main
from lookalike.library import Library, library_share
from lookalike.pictures import decode_image
from lookalike.pictures.palettes import RecolourCount, palette_key, share_of_recolours
from lookalike.search import Searcher
from lookalike.tuning import RECOLOUR_SHARE, recolour_blind_model


def sprite(seed: int, palette_seed: int, size=(24, 24), colours: int = 5) -> Image.Image:
    """Blocks of `colours` palette entries (index 0 transparent); the layout from `seed`, the
    colours from `palette_seed`: the same seed in two palettes is a palette swap."""
    layout = np.random.default_rng(seed).integers(0, colours, (size[1] // 4, size[0] // 4))
    layout = layout.repeat(4, axis=0).repeat(4, axis=1)
    palette = np.random.default_rng(1000 + palette_seed).integers(0, 256, (colours, 4))
    palette[:, 3] = 255
    palette[0] = (0, 0, 0, 0)
    return Image.fromarray(palette[layout].astype(np.uint8), "RGBA")


def test_a_palette_swap_shares_the_key_and_not_the_pixels():
    key, pixels = palette_key(sprite(1, 1))
    swapped_key, swapped_pixels = palette_key(sprite(1, 2))
    assert key == swapped_key and pixels != swapped_pixels
    assert palette_key(sprite(2, 1))[0] != key  # another layout
    # a big sheet is sampled every n-th pixel, the same pixels in both colourways
    big, big_swap = sprite(3, 1, size=(840, 600)), sprite(3, 2, size=(840, 600))
    assert palette_key(big)[0] == palette_key(big_swap)[0] != palette_key(sprite(4, 1, (840, 600)))[0]  # fmt: skip


def test_transparent_pixels_are_one_colour_and_some_pictures_have_no_key():
    a = np.array(sprite(5, 1))
    b = a.copy()
    clear = b[..., 3] == 0
    assert clear.any()
    b[clear] = (200, 10, 10, 0)  # other colours under full transparency
    assert palette_key(Image.fromarray(a)) == palette_key(Image.fromarray(b))
    assert palette_key(Image.new("RGB", (16, 16), "red")) is None  # one colour
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert palette_key(Image.fromarray(noise)) is None  # a photo, not pixel art


def test_the_share_counts_pictures_with_a_recolour_among_them():
    count = RecolourCount()
    for picture in (sprite(1, 1), sprite(1, 2), sprite(1, 3), sprite(2, 1), sprite(3, 1)):
        count.add(picture)
    count.add(sprite(2, 1))  # the same picture again is not a recolour of it
    assert len(count.signatures) == 6 and count.share() == pytest.approx(3 / 6)
    assert RecolourCount().share() == 0.0


def _tune(tmp_path, capsys, name: str, pictures: list[Image.Image], *model: str) -> str:
    folder = tmp_path / f"{name}-pictures"
    folder.mkdir()
    for n, picture in enumerate(pictures):
        picture.save(folder / f"{n:02d}.png")
    root = tmp_path / name
    assert cli_main(["-L", str(root), "index", str(folder), "-q", *model]) == 0
    capsys.readouterr()
    assert cli_main(["-L", str(root), "tune"]) == 0
    return capsys.readouterr().err


def test_tune_says_when_a_library_is_mostly_recolours(tmp_path, capsys):
    """A library whose model was chosen keeps it: tune only names the option."""
    swaps = [sprite(layout, palette) for layout in range(6) for palette in range(3)]
    output = _tune(tmp_path, capsys, "swaps", swaps, "--model", "effnet-lite0")
    assert "learned the ranking from 18 images" in output
    assert "100% of the library's pictures are recolours" in output
    assert "--model effnet-lite0-shape" in output and "re-embedded" not in output
    with Library.open(tmp_path / "swaps") as library:
        assert library.model_name == "effnet-lite0" and library.model_chosen_by == "user"
    # not for a library that ignores colour already, nor for one without recolours
    output = _tune(tmp_path, capsys, "shapes", swaps, "--model", "effnet-lite0-shape")
    assert "learned the ranking from 18 images" in output and "recolours" not in output
    distinct = [sprite(layout, layout) for layout in range(18)]
    output = _tune(tmp_path, capsys, "distinct", distinct)
    assert "learned the ranking from 18 images" in output and "recolours" not in output
    with Library.open(tmp_path / "distinct") as library:
        assert library.model_name == "effnet-lite0" and library.model_chosen_by == "default"


def test_tune_switches_a_library_of_recolours_nobody_chose_a_model_for(tmp_path, capsys):
    swaps = [sprite(layout, palette) for layout in range(6) for palette in range(3)]
    output = _tune(tmp_path, capsys, "swaps", swaps)
    assert "100% of the library's pictures are recolours" in output
    assert "re-embedded the library's 18 images with effnet-lite0-shape@2" in output
    assert "learned the ranking from 18 images" in output and "note:" not in output
    root = tmp_path / "swaps"
    with Library.open(root) as library:
        assert library.model_name == "effnet-lite0-shape" and library.model_chosen_by == "tune"
        assert library.catalog.get_meta("model_id") == "effnet-lite0-shape@2"
        assert library.whitening is not None and library.whitening.model_id == "effnet-lite0-shape@2"  # fmt: skip
        layout_of = {r.id: int(r.first_place.source[-6:-4]) // 3 for r in library.catalog.images(library.catalog.vector_ids()).values()}  # fmt: skip
        for image_id, layout in layout_of.items():  # each sprite finds its two recolours first
            (result,) = Searcher(library).search([f"id:{image_id}"], 2, collapse=False)
            assert [layout_of[h.id] for h in result.hits] == [layout, layout], result.hits
    assert cli_main(["-L", str(root), "check"]) == 0  # a sound library after the switch
    capsys.readouterr()
    assert cli_main(["-L", str(root), "stats"]) == 0
    stats = capsys.readouterr().out
    assert "effnet-lite0-shape@2 (1280 dims; chosen by tune; 100% of the pictures are palette swaps)" in stats, stats  # fmt: skip
    # tuned again: nothing more to switch; and a model the user picks stays theirs
    assert cli_main(["-L", str(root), "tune"]) == 0
    assert "recolours" not in capsys.readouterr().err
    assert cli_main(["-L", str(root), "reindex", "--model", "effnet-lite0", "-q"]) == 0
    capsys.readouterr()
    assert cli_main(["-L", str(root), "tune"]) == 0
    output = capsys.readouterr().err
    assert "note: 100% of the library's pictures are recolours" in output
    with Library.open(root) as library:
        assert library.model_name == "effnet-lite0" and library.model_chosen_by == "user"


def test_naming_the_model_later_makes_it_the_users(tmp_path):
    """`index --model effnet-lite0` on a library made without --model: the owner has now
    chosen colours, and tune will not switch the library away from them."""
    root = tmp_path / "library"
    with Library.open(root, write=True) as library:
        assert library.model_chosen_by == "default"
    with Library.open(root, model="effnet-lite0") as library:  # reading: records nothing
        assert library.model_chosen_by == "default"
    with Library.open(root, write=True, model="effnet-lite0") as library:
        assert library.model_chosen_by == "user"
        assert recolour_blind_model(library, 1.0) is None


def test_a_library_made_before_the_choice_was_recorded_counts_as_chosen(tmp_path):
    with Library.open(tmp_path / "old", write=True) as library:
        assert library.model_chosen_by == "default"
        with library.catalog.transaction():
            library.catalog.conn.execute("DELETE FROM meta WHERE key = 'model_chosen_by'")
        assert library.model_chosen_by == "user"
        assert recolour_blind_model(library, 1.0) is None
        # a value it cannot read (a damaged or a newer catalog's) counts as the user's too
        library.catalog.set_meta("model_chosen_by", "somebody")
        assert library.model_chosen_by == "user"
        assert recolour_blind_model(library, 1.0) is None
    with Library.open(tmp_path / "new", write=True) as library:
        assert recolour_blind_model(library, 1.0) == "effnet-lite0-shape"
        assert recolour_blind_model(library, RECOLOUR_SHARE - 0.01) is None


def _png(picture: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, kind)
    return buffer.getvalue()


def test_decoding_keeps_the_palette_key_of_the_full_size_picture():
    """What the catalog keeps (schema v8): the key of the picture as stored, though decoding
    shrinks it for the model; none for a JPEG, which is never exact palette art."""
    one = decode_image(_png(sprite(7, 1, (800, 800))), min_size=192, keep_alpha=True, palette=True)  # fmt: skip
    swap = decode_image(_png(sprite(7, 2, (800, 800))), min_size=192, keep_alpha=True, palette=True)  # fmt: skip
    assert max(one.image.size) < 800  # shrunk for the model
    key, pixels = palette_key(sprite(7, 1, size=(800, 800)))
    assert one.palette_key == f"{key} {pixels}"
    assert swap.palette_key.split()[0] == key and swap.palette_key != one.palette_key
    assert decode_image(_png(sprite(7, 1).convert("RGB"), "JPEG"), palette=True).palette_key == ""
    assert decode_image(_png(sprite(7, 1))).palette_key is None  # not asked for: a query
    assert share_of_recolours([one.palette_key, swap.palette_key, "", one.palette_key]) == 0.75


def test_a_library_without_palette_keys_counts_the_sampled_pictures(tmp_path, capsys):
    """Images indexed before the keys were kept: tune counts among the pictures it reads, and
    `reindex --model` fills the keys in."""
    swaps = [sprite(layout, palette) for layout in range(6) for palette in range(3)]
    _tune(tmp_path, capsys, "old", swaps, "--model", "effnet-lite0")
    root = tmp_path / "old"
    with Library.open(root, write=True) as library:
        assert library_share(library.catalog) == 1.0
        with library.catalog.transaction():
            library.catalog.conn.execute("UPDATE images SET palette_key = NULL WHERE id > 6")
        assert library_share(library.catalog) is None  # 6 of 18 looked at: too few
    assert cli_main(["-L", str(root), "tune"]) == 0
    assert "note: 100% of the sampled pictures are recolours" in capsys.readouterr().err
    assert cli_main(["-L", str(root), "reindex", "--model", "effnet-lite0-shape", "-q"]) == 0
    with Library.open(root) as library:
        assert None not in library.catalog.palette_keys()
        assert library_share(library.catalog) == 1.0


def test_the_sprites_of_a_sheet_have_palette_keys(tmp_path):
    sheet = Image.new("RGBA", (120, 40), (0, 0, 0, 0))
    for n in range(3):
        sheet.paste(sprite(20 + n, 1), (n * 40 + 8, 8))
    folder = tmp_path / "sheets"
    folder.mkdir()
    sheet.save(folder / "sheet.png")
    root = tmp_path / "library"
    assert cli_main(["-L", str(root), "index", str(folder), "--tiles", "-q"]) == 0
    with Library.open(root) as library:
        keys = library.catalog.palette_keys()
    assert len(keys) >= 4 and all(keys), keys  # the sheet and its sprites


def test_odd_and_broken_pictures_get_no_key_or_a_clear_error():
    """The key is worked out inside decode's guarded block: 16-bit, float, 1-bit and CMYK
    pictures decode with a key or none, never an error of the key's own; a truncated file is
    the same DecodeError as without keys."""
    from lookalike.pictures import DecodeError

    grey16 = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7)
    assert grey16.mode == "I;16"
    for picture, kind in ((grey16, "PNG"), (Image.new("1", (9, 9)), "PNG"), (Image.new("F", (9, 9)), "TIFF"), (Image.new("CMYK", (9, 9)), "TIFF")):  # fmt: skip
        decoded = decode_image(_png(picture, kind), palette=True)
        assert isinstance(decoded.palette_key, str), picture.mode
    whole = _png(sprite(8, 1))
    with pytest.raises(DecodeError):
        decode_image(whole[: len(whole) // 2], palette=True)
