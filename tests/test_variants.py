"""Variants (tuning/variants.py): small pictures of one size with most pixels in common, found among
the library's look-alikes, and the whitening that learns to tell them apart
(ranking/whitening.py, `variants`; tuning/tuner.py)."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.ranking import MIN_VARIANT_PAIRS, learn_whitening
from lookalike.sources import FolderSource
from lookalike.tuning import tuner
from lookalike.tuning.variants import MAX_AREA, same_share, variant_pairs, variant_pixels


def _pixel_art(seed: int, side: int = 16) -> Image.Image:
    """A picture of a few flat colours on transparency, as icons and tiles are."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (6, 4), dtype=np.uint8)
    palette[:, 3] = 255
    palette[0] = 0  # transparent
    cells = rng.integers(0, len(palette), (side // 4, side // 4))
    pixels = palette[np.kron(cells, np.ones((4, 4), dtype=np.int64))]
    return Image.fromarray(pixels, "RGBA")


def _with_patch(image: Image.Image, seed: int, side: int = 4) -> Image.Image:
    """The picture with one small square in another colour: a variant of it."""
    rng = random.Random(seed)
    out = image.copy()
    x, y = rng.randrange(image.width - side), rng.randrange(image.height - side)
    colour = tuple(rng.randrange(256) for _ in range(3)) + (255,)
    out.paste(Image.new("RGBA", (side, side), colour), (x, y))
    return out


def test_the_share_of_pixels_in_common_counts_the_area_either_picture_covers():
    icon = _pixel_art(1)
    pixels = variant_pixels(icon)
    assert pixels is not None and pixels.shape == (16, 16, 4)
    assert same_share(pixels, pixels) == 1.0
    variant = variant_pixels(_with_patch(icon, 2))
    covered = ((pixels[..., 3] > 0) | (variant[..., 3] > 0)).sum()
    differing = ((pixels != variant).any(axis=-1)).sum()
    assert 0 < differing <= 16
    assert same_share(pixels, variant) == (covered - differing) / covered
    # transparent pixels count as one, whatever colour they hide
    hidden = np.array(icon)
    hidden[hidden[..., 3] == 0, :3] = 77
    assert same_share(pixels, variant_pixels(Image.fromarray(hidden, "RGBA"))) == 1.0
    # pictures of two sizes, or that cover nothing, share nothing
    assert same_share(pixels, variant_pixels(_pixel_art(1, side=20))) == 0.0
    clear = variant_pixels(Image.new("RGBA", (16, 16)))
    assert same_share(clear, clear) == 0.0
    # large pictures are not kept (photos, sheets)
    assert variant_pixels(Image.new("RGB", (MAX_AREA + 1, 1))) is None
    assert variant_pixels(Image.new("RGB", (128, 128))) is not None


def _look_alikes(pictures: list[Image.Image]) -> np.ndarray:
    """Vectors by what pictures look like shrunk: every copy lies near its original."""
    small = [np.asarray(p.convert("RGB").resize((8, 8), Image.BOX), np.float32).ravel() for p in pictures]  # fmt: skip
    mapped = np.stack(small) - np.mean(small, axis=0)
    return mapped / np.linalg.norm(mapped, axis=1, keepdims=True)


def test_variants_are_look_alikes_of_one_size_with_most_but_not_all_pixels_in_common():
    base = [_pixel_art(seed) for seed in range(6)]
    pictures = list(base)  # rows 0-5: six pictures
    pictures += [_with_patch(base[k], k) for k in range(3)]  # rows 6-8: variants of 0-2
    pictures.append(base[3].copy())  # row 9: picture 3 saved twice: the same pixels
    noisy = np.array(base[4]).astype(np.int16)
    noisy[..., :3] += np.random.default_rng(0).integers(-3, 4, noisy[..., :3].shape, dtype=np.int16)  # fmt: skip
    pictures.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGBA"))  # row 10
    pictures += [base[k].resize((32, 32), Image.NEAREST) for k in range(6)]  # 11-16: enlarged
    pixels = [variant_pixels(p) for p in pictures]
    sizes = [p.size for p in pictures]
    mapped = _look_alikes(pictures)
    assert variant_pairs(mapped, pixels, sizes, nearest=3) == [(0, 6), (1, 7), (2, 8)]
    # pictures whose pixels were not kept are not compared
    assert variant_pairs(mapped, [None, *pixels[1:6], None, *pixels[7:]], sizes, nearest=3) == [(1, 7), (2, 8)]  # fmt: skip
    # only where the pictures come in several sizes: not in a set of one size, and not where
    # the sizes are not known
    assert variant_pairs(mapped[:11], pixels[:11], sizes[:11], nearest=3) == []
    assert variant_pairs(mapped, pixels, [None] * len(pictures), nearest=3) == []
    assert variant_pairs(mapped[:1], pixels[:1], sizes[:1]) == []


def test_variants_are_learned_only_where_most_pictures_have_a_look_alike_of_another_size():
    """Five subjects, each a picture and its variant (kept, 16 px) and two look-alikes whose
    pixels were not kept; those are of another size for some of the subjects only."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (5, 32))
    mapped = np.repeat(centres, 4, axis=0) + rng.normal(0, 0.01, (20, 32))
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    pixels = []
    for subject in range(5):
        icon = _pixel_art(subject)
        pixels += [variant_pixels(icon), variant_pixels(_with_patch(icon, subject)), None, None]
    expected = [(4 * k, 4 * k + 1) for k in range(5)]

    def sizes(resized_subjects: int):
        big = [(32, 32) if k < resized_subjects else (16, 16) for k in range(5)]
        return [size for k in range(5) for size in [(16, 16), (16, 16), big[k], big[k]]]

    assert variant_pairs(mapped, pixels, sizes(5)) == expected
    assert variant_pairs(mapped, pixels, sizes(3)) == expected  # 0.6 of them: all pairs
    assert variant_pairs(mapped, pixels, sizes(2)) == []  # 0.4: a library of one size, mostly
    assert variant_pairs(mapped, pixels, sizes(0)) == []


def test_a_background_of_one_colour_counts_as_transparent():
    """Tiles drawn on a colour key agree wherever both show it: that is not what they share."""
    key = (71, 108, 108, 255)
    tiles = []
    for seed in range(2):
        tile = Image.new("RGBA", (32, 32), key)
        tile.alpha_composite(_pixel_art(seed), (8, 8))
        tiles.append(tile)
    a, b = (variant_pixels(t) for t in tiles)
    assert (a[:8] == 0).all() and (a[8:24, 8:24, 3] > 0).any()
    assert same_share(a, b) < 0.3  # the 16 px pictures on it, as good as unrelated
    # ...and the two as they are, key and all, would pass for variants
    whole = [np.array(t) for t in tiles]
    assert same_share(*whole) > 0.6


def _twin_icons(seed: int, pairs: int = 100, dim: int = 64):
    """Vectors of icons that come in pairs of variants, each drawn at two sizes. A size moves
    a vector far in 8 directions, the same way for both variants (they are drawn alike at one
    size); what tells the variants apart is a smaller difference in 8 others. So under cosine
    similarity an icon's variant at its own size is nearer than the icon at the other size."""
    rng = np.random.default_rng(seed)
    shared = np.zeros((pairs, dim))
    shared[:, 16:] = rng.normal(0, 1, (pairs, dim - 16))
    detail = np.zeros((pairs, 2, dim))
    detail[..., 8:16] = rng.normal(0, 0.45, (pairs, 2, 8))
    size = np.zeros((pairs, 2, dim))  # per pair of variants and size
    size[..., :8] = rng.normal(0, 0.5, (pairs, 2, 8))
    # rows: pair p, variant v, size s -> p * 4 + v * 2 + s
    vectors = shared[:, None, None] + detail[:, :, None] + size[:, None, :]
    vectors = vectors.reshape(pairs * 4, dim)
    icons = np.repeat(np.arange(pairs * 2), 2)  # the same icon: the same pair and variant
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), icons


def _icon_recall_at_1(mapped: np.ndarray, icons: np.ndarray) -> float:
    sims = mapped @ mapped.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean(icons[sims.argmax(axis=1)] == icons))


def test_learning_with_variants_tells_them_apart_in_a_library_it_never_saw():
    vectors, icons = _twin_icons(0)
    rng = np.random.default_rng(1)
    views = vectors + rng.normal(0, 0.02, vectors.shape)
    # the variants: the two icons of a pair at one size (rows p*4 + s and p*4 + 2 + s)
    rows = np.arange(len(vectors)).reshape(-1, 2, 2)
    differences = (vectors[rows[:, 0]] - vectors[rows[:, 1]]).reshape(-1, vectors.shape[1])
    learn = dict(model_id="m", library_size=len(vectors))
    plain = learn_whitening(vectors, [(vectors, views)], **learn)
    told = learn_whitening(vectors, [(vectors, views)], **learn, variants=differences)
    unseen, unseen_icons = _twin_icons(2)
    before = _icon_recall_at_1(plain.apply(unseen), unseen_icons)
    after = _icon_recall_at_1(told.apply(unseen), unseen_icons)
    assert before < 0.5 and after > before + 0.2, (before, after)  # 0.39 -> 0.74 when written
    # a handful of pairs is left out: it would stretch a handful of directions
    few = learn_whitening(vectors, [(vectors, views)], **learn, variants=differences[: MIN_VARIANT_PAIRS - 1])  # fmt: skip
    assert np.array_equal(few.projection, plain.projection)


def test_tune_finds_the_librarys_variants_and_learns_to_tell_them_apart(tmp_path, monkeypatch):
    folder = tmp_path / "icons"
    folder.mkdir()
    for seed in range(40):
        icon = _pixel_art(seed, side=24)
        icon.save(folder / f"icon{seed:02d}.png")
        icon.resize((48, 48), Image.NEAREST).save(folder / f"icon{seed:02d}-48.png")
        if seed < 30:  # 30 of them with a variant beside
            _with_patch(icon, seed).save(folder / f"icon{seed:02d}-lit.png")
    root = tmp_path / "library"
    with Library.open(root, write=True) as library:
        Indexer(library, progress=False).run([FolderSource(folder)])
        report = tuner.learn(library, progress=False)
        assert report.sampled == 110
        assert report.variant_pairs == 30
        ids = {rec.first_place.source.rsplit("/", 1)[-1]: i for i, rec in library.catalog.images(library.catalog.vector_ids()).items()}  # fmt: skip
        monkeypatch.setattr(tuner, "variant_pairs", lambda *args, **kwargs: [])
        without = tuner.learn(library, progress=False)
        assert without.variant_pairs == 0

        def similarity(whitening, a: str, b: str) -> float:
            found, vectors = library.catalog.vectors([ids[a], ids[b]])
            _, details = library.catalog.details(found, whitening.detail_dim)
            mapped = whitening.apply(vectors, details)
            return float(mapped[0] @ mapped[1])

        # each icon and its variant lie further apart than without them: the distance
        # (1 - similarity) grows by over a third (it doubled when written: 0.066 -> 0.128)
        pairs = [(f"icon{k:02d}.png", f"icon{k:02d}-lit.png") for k in range(30)]
        apart = 1 - np.mean([similarity(report.whitening, *p) for p in pairs])
        together = 1 - np.mean([similarity(without.whitening, *p) for p in pairs])
        assert apart > 1.33 * together, (apart, together)
