"""Verification of small pictures by their pixels (search/pixel_match.py), alone and in a search."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from lookalike.library import Library
from lookalike.search import Searcher, pixel_match
from lookalike.search.verify import (
    KEYPOINT_DEPTH,
    PIXEL_DEPTH,
    candidate_pixels,
    verification_depth,
)

from .conftest import index_icons, make_icon, make_picture


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def compare(query: Image.Image, candidate: Image.Image) -> pixel_match.PixelMatch:
    return pixel_match.match(pixel_match.pixels(query), pixel_match.pixels(candidate))


def test_a_crop_is_found_where_it_was_cut():
    original = make_icon(1, 32)
    found = compare(original.crop((5, 3, 25, 27)), original)
    assert found.similarity > 0.999 and found.arrangement == "crop"
    assert found.region == (5, 3, 20, 24) and found.overlap == pytest.approx(480 / 1024)
    assert not found.mirrored and found.turned == 0


def test_a_turned_crop_is_found_where_it_was_cut():
    """The query turned is compared as the query as it is inside the candidate turned back:
    the region is still given in the candidate's own pixels."""
    blocks = np.random.default_rng(12).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    original = Image.fromarray(blocks).resize((32, 32), Image.NEAREST)  # no symmetry of its own
    crop = original.crop((5, 3, 25, 27))  # 20 x 24
    transposes = (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE)  # mirror + quarter turn
    for transpose in list(Image.Transpose)[:7]:  # every symmetry but the identity
        found = compare(crop.transpose(transpose), original)
        assert found.arrangement == "crop" and found.region == (5, 3, 20, 24), transpose
        penalty = pixel_match.TRANSPOSE_PENALTY if transpose in transposes else pixel_match.SYMMETRY_PENALTY  # fmt: skip
        assert found.similarity == pytest.approx(1.0 - penalty, abs=1e-4), transpose


def test_tiles_side_by_side_score_as_each_alone():
    """One matchTemplate over several tiles gives each tile's own best, windows across two
    tiles left out."""
    rng = np.random.default_rng(4)
    tiles = [rng.uniform(0, 255, (20, 16)).astype(np.float32) for _ in range(4)]
    template = tiles[2][5:14, 3:12].copy()
    together = pixel_match._correlate_tiles(pixel_match.side_by_side(tiles), template)
    alone = [
        pixel_match._correlate_tiles(pixel_match.side_by_side([tile]), template)[0]
        for tile in tiles
    ]
    for (score, x, y), (score_alone, x_alone, y_alone) in zip(together, alone):
        assert score == pytest.approx(score_alone, abs=1e-5) and (x, y) == (x_alone, y_alone)
    assert together[2][0] > 0.999 and together[2][1:] == (3, 5)


def test_a_quarter_size_copy_is_compared_at_its_own_size():
    original = make_icon(2, 32)
    found = compare(original.resize((8, 8), Image.LANCZOS), original)
    assert found.similarity > 0.95 and found.arrangement == "whole"


def test_a_framed_copy_holds_the_candidate():
    original = make_icon(3, 24)
    framed = ImageOps.expand(original, border=3, fill=(250, 20, 200))
    found = compare(framed, original)
    assert found.similarity > 0.95 and found.arrangement == "frame"


def test_turned_and_mirrored_copies_pay_the_symmetry_penalty():
    original = make_icon(4, 24)
    turned = ImageOps.mirror(original).transpose(Image.Transpose.ROTATE_90)
    found = compare(turned, original)
    assert found.mirrored and found.turned in (1, 3)
    assert found.similarity == pytest.approx(1.0 - pixel_match.TRANSPOSE_PENALTY, abs=1e-4)
    flipped = compare(ImageOps.flip(original), original)  # a mirror and a half turn: one edit
    assert flipped.mirrored and flipped.turned == 2
    assert flipped.similarity == pytest.approx(1.0 - pixel_match.SYMMETRY_PENALTY, abs=1e-4)


def test_a_turned_copy_goes_to_its_original_rather_than_to_a_transposed_twin():
    """When a turned copy is, pixel for pixel, also a mirrored and turned twin (rltiles'
    zap effects), the one edit is the likelier than the two."""
    original = make_icon(4, 24)
    query = original.transpose(Image.Transpose.ROTATE_90)
    twin = query.transpose(Image.Transpose.TRANSPOSE)  # the query is its transpose too
    assert compare(query, original).similarity > compare(query, twin).similarity


def test_a_twin_that_needs_no_turning_beats_the_original_turned():
    """Icon sets hold mirrored twins (skip-forward, skip-backward): a mirrored copy of one is
    the other, pixel for pixel, and that unturned match is the better answer."""
    original = make_icon(5, 24)
    twin = ImageOps.mirror(original)
    query = ImageOps.mirror(original)
    assert compare(query, twin).similarity > compare(query, original).similarity


def test_greyscale_and_colour_changes_keep_the_similarity():
    original = make_icon(6, 24)
    grey = original.convert("L").convert("RGB")
    brighter = Image.eval(original, lambda v: min(255, int(v * 1.2) + 10))
    assert compare(grey, original).similarity > pixel_match.MATCH_THRESHOLD
    assert compare(brighter, original).similarity > pixel_match.MATCH_THRESHOLD


def recoloured(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The picture with one part's hue turned half way round (chroma negated) and its
    luminance kept: a recolour, as game art's potions and pants come in."""
    ycbcr = np.asarray(image.convert("YCbCr")).copy()
    x0, y0, x1, y1 = box
    part = ycbcr[y0:y1, x0:x1, 1:].astype(int)
    ycbcr[y0:y1, x0:x1, 1:] = np.clip(256 - part, 0, 255)
    return Image.fromarray(ycbcr, "YCbCr").convert("RGB")


def test_a_copy_ranks_its_original_above_a_recolour_of_it():
    """A recolour has the original's luminance, so luminance alone ties it with the original;
    the colours decide: a brighter, more saturated copy's colours are the original's scaled,
    not the recolour's. A grey copy cannot tell them apart and pays nothing."""
    original = make_picture(11, size=(24, 24))
    twin = recoloured(original, (0, 0, 24, 12))
    copy = ImageEnhance.Color(Image.eval(original, lambda v: min(255, int(v * 1.1)))).enhance(1.2)
    to_original, to_twin = compare(copy, original), compare(copy, twin)
    # both are copies by their pixels (a recolour is an edited copy too) ...
    assert to_twin.similarity == pytest.approx(to_original.similarity, abs=0.01)
    assert to_twin.similarity > pixel_match.MATCH_THRESHOLD
    # ... but the colours rank the original first
    assert to_original.ranking > to_twin.ranking + pixel_match.COLOUR_PENALTY / 2
    assert to_original.colour_penalty == 0.0
    grey = original.convert("L").convert("RGB")
    assert compare(grey, original).ranking == pytest.approx(compare(grey, twin).ranking, abs=1e-3)  # fmt: skip
    assert compare(grey, original).ranking > 0.999


def hue_turned(image: Image.Image, degrees: float) -> Image.Image:
    """The picture with every colour's hue turned by `degrees` and its luminance kept: chroma
    (Cb, Cr) rotated about grey, as a hue shift does."""
    ycbcr = np.asarray(image.convert("YCbCr")).astype(float)
    chroma = (ycbcr[..., 1] - 128) + 1j * (ycbcr[..., 2] - 128)
    chroma *= np.exp(1j * np.radians(degrees))
    ycbcr[..., 1], ycbcr[..., 2] = chroma.real + 128, chroma.imag + 128
    return Image.fromarray(np.clip(ycbcr, 0, 255).round().astype(np.uint8), "YCbCr").convert("RGB")


def test_a_hue_shifted_copy_ranks_its_original_above_a_recolour_of_it():
    """A hue shift turns every colour by one angle; a recolour turned a part of the picture
    its own way. So the original explains the copy's colours by one turn, and pays only
    HUE_TURN of the penalty, where the recolour pays more (before the turn was fitted, both paid
    it in full and tied)."""
    original = make_picture(11, size=(24, 24))
    twin = recoloured(original, (0, 0, 24, 12))
    copy = hue_turned(original, 100)
    to_original, to_twin = compare(copy, original), compare(copy, twin)
    assert min(to_original.similarity, to_twin.similarity) > pixel_match.MATCH_THRESHOLD
    assert to_original.colour_penalty == pytest.approx(pixel_match.COLOUR_PENALTY * pixel_match.HUE_TURN, abs=1e-3)  # fmt: skip
    assert to_original.ranking > to_twin.ranking + pixel_match.COLOUR_PENALTY / 4
    # a copy with its colours as they were still pays nothing: the turn is the dearer fit
    assert compare(original, original).colour_penalty == 0.0


def test_different_pictures_stay_below_the_threshold():
    scores = [compare(make_icon(100 + i), make_icon(200 + i)).similarity for i in range(20)]
    assert max(scores) < pixel_match.MATCH_THRESHOLD, scores


def test_flat_and_tiny_pictures_match_nothing_by_accident():
    flat = Image.new("RGB", (16, 16), (40, 90, 200))
    assert compare(flat, make_icon(7, 16)).similarity < 0.5
    assert compare(make_icon(7, 16), flat).similarity < 0.5
    one = Image.new("RGB", (1, 1), (1, 2, 3))
    assert compare(one, make_icon(7, 16)).similarity <= 0.0
    strip = make_icon(8, 16).resize((16, 1))
    assert np.isfinite(compare(strip, make_icon(8, 16)).similarity)


def test_transparent_queries_are_compared_on_grey():
    original = make_icon(9, 24)
    with_alpha = original.convert("RGBA")
    with_alpha.putpixel((0, 0), (255, 0, 0, 0))  # a hidden colour under full transparency
    grey_corner = original.copy()
    grey_corner.putpixel((0, 0), (128, 128, 128))
    assert np.array_equal(pixel_match.pixels(with_alpha).grey, pixel_match.pixels(grey_corner).grey)


@pytest.fixture
def icon_library(tmp_path):
    """40 pixel-art icons of 16-32 px, indexed with the default model."""
    return index_icons(tmp_path, 40, first_seed=300, sizes=(16, 22, 24, 32), seed=0)


def test_a_verified_search_finds_an_edited_copy_of_an_icon_by_its_pixels(icon_library):
    root, folder = icon_library
    original = Image.open(folder / "icon07.png").convert("RGB")
    w, h = original.size
    edited = original.crop((2, 1, w - 3, h - 2)).convert("L").transpose(Image.Transpose.ROTATE_270)
    candidate_pixels.clear()
    with Library.open(root) as library:
        searcher = Searcher(library)
        query = searcher.bytes_vector(encode(edited, "JPEG", quality=90))
        assert verification_depth(library, query) == PIXEL_DEPTH
        hits = searcher.search_vector(query, 5, collapse=False, verify=True)
        unrelated = searcher.bytes_vector(encode(make_icon(999, 24)))
        others = searcher.search_vector(unrelated, 5, collapse=False, verify=True)
    top = hits[0]
    assert top.record.first_place.source.endswith("icon07.png")
    assert top.tier == "copy" and top.verification.method == "pixels"
    assert top.verification.similarity >= pixel_match.MATCH_THRESHOLD
    assert top.verification.region[2] < w and candidate_pixels.get(top.record.sha256)
    assert all(h.tier == "similar" for h in hits[1:])
    assert all(h.tier == "similar" for h in others)
    assert top.verification.as_dict()["method"] == "pixels"


def test_large_pictures_keep_the_keypoint_depth(icon_library, tmp_path):
    root, _ = icon_library
    with Library.open(root) as library:
        searcher = Searcher(library)
        big = searcher.bytes_vector(encode(make_picture(5, size=(200, 150))))
        assert verification_depth(library, big) == KEYPOINT_DEPTH
        small_id = library.catalog.vector_ids()[0]
        assert verification_depth(library, searcher.id_vector(int(small_id))) == PIXEL_DEPTH


def test_a_hue_shift_is_seen_through_in_hsv_value():
    """A hue shift keeps HSV value (max of R, G, B) but not luminance: yellow turned blue is
    much darker. Saturated colours make the point."""
    rng = random.Random(3)
    original = Image.new("RGB", (24, 24), (0, 0, 0))
    for x in range(0, 24, 4):
        for y in range(0, 24, 4):
            colour = rng.choice([(255, 255, 0), (0, 255, 0), (255, 128, 0), (40, 40, 40)])
            original.paste(colour, (x, y, x + 4, y + 4))
    hsv = np.asarray(original.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256  # half way round the colour wheel
    shifted = Image.fromarray(hsv, "HSV").convert("RGB")
    query, candidate = pixel_match.pixels(shifted), pixel_match.pixels(original)
    luminance_only = np.corrcoef(query.grey.ravel(), candidate.grey.ravel())[0, 1]
    assert luminance_only < pixel_match.MATCH_THRESHOLD  # luminance alone misses it
    assert compare(shifted, original).similarity > pixel_match.MATCH_THRESHOLD


def test_a_candidate_whose_file_went_bad_stays_unverified(icon_library):
    """Candidate files replaced by garbage or gone after indexing: the verified search still
    answers, those hits are simply unverified, and the library keeps every image."""
    root, folder = icon_library
    query = encode(Image.open(folder / "icon07.png").convert("RGB"))
    with Library.open(root) as library:
        searcher = Searcher(library)
        first, second = searcher.search_vector(searcher.bytes_vector(query), 2, collapse=False)
    broken, gone = (Path(h.record.first_place.source) for h in (first, second))
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    gone.unlink()
    candidate_pixels.clear()
    with Library.open(root) as library:
        searcher = Searcher(library)
        hits = searcher.search_vector(searcher.bytes_vector(query), 30, collapse=False, verify=True)
        assert len(library.catalog.vector_ids()) == 40
    by_id = {h.id: h for h in hits}
    assert by_id[first.id].verification is None and by_id[second.id].verification is None
    assert by_id[first.id].tier == "exact"  # the same pixels as when it was indexed
    assert all(h.verification is not None for h in hits if h.id not in (first.id, second.id))
