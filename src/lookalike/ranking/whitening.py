"""Learned whitening: a linear map of a library's vectors, learned from its own images, under
which an image and its edited views lie closer together than under plain cosine similarity.

The network's vectors spend much of their length on what every image of a collection shares
(a theme's palette, a tile set's background) and on what resampling moves. Whitening learned
from matching pairs (Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human
annotation", 2018) divides those directions out. The pairs need no labels: each is a library
image and an edited view of it (shrunk; cropped, shrunk and recoloured a little), embedded by
the library's own model (tuning/tuner.py). Then:

    m   = the mean of the library's vectors
    Cs  = covariance of the pairs' differences (what edits move), shrunk towards its mean
          eigenvalue by SHRINK (a few hundred pairs against 1,280 dimensions)
    x  -> Cs^-1/2 (x - m), then rotated onto the principal axes of the library so mapped, and
          the first DIMS of them kept; the result is L2-normalised.

A model with details (embed/base.py) is whitened with them: each vector and its details side by
side are what is mapped, so where things lie in the picture counts too, which the index's one
vector per picture loses.

Search ranks the vector index's best candidates by their cosine similarity in this space
(search/searcher.py); the index itself, near-duplicate collapsing and the copy tier keep the model's own
vectors. Measured on ../shared/bench-data (docs/quality.md, 'Learned whitening').
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHRINK = 0.1  # tango/flags/rltiles: 0.03-0.3 all within 0.015 mAP@10; more is safer on few pairs
DIMS = 256  # against 128: flags 0.668 vs 0.636, the others within 0.004 (docs/quality.md)
# neighbour_pairs: mutual nearest neighbours among this many, the half that stand out most,
# weighted against the edited views' pairs (chosen on bench-data, docs/quality.md 'Look-alikes')
NEIGHBOURS = 3
NEIGHBOUR_SHARE = 0.5
NEIGHBOUR_WEIGHT = 0.3
# learn_whitening's `variants` (tuning/variants.py): their spread in all counts this many times the
# library's, and the axes are stretched by spread ** VARIANT_STRETCH (chosen on bench-data, docs/quality.md
# 'Variants'); fewer pairs than MIN_VARIANT_PAIRS are left out: a few would stretch a few axes
VARIANT_WEIGHT = 3.0
VARIANT_STRETCH = 0.25
MIN_VARIANT_PAIRS = 20


class WhiteningError(ValueError):
    """A stored whitening that cannot be used; the message says why."""


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # (dim,) float32
    projection: np.ndarray  # (dim, DIMS) float32
    model_id: str  # the model whose vectors it maps: another model's vectors cannot use it
    images: int  # how many library images' edited views it was learned from
    library_size: int  # how many images the library held then (tuning/tuner.py refits as it grows)
    detail_dim: int = 0  # the last detail_dim of `mean`'s dimensions are the model's details

    def apply(self, vectors: np.ndarray, details: np.ndarray | None = None) -> np.ndarray:
        """Map (n, dim) vectors, with their (n, detail_dim) details when it was learned with
        them (without: the library's mean details, which leaves the vectors to decide); rows
        are L2-normalised (a zero row stays zero)."""
        vectors = np.asarray(vectors, np.float32)
        if self.detail_dim:
            if details is None:
                details = np.broadcast_to(self.mean[-self.detail_dim :], (len(vectors), self.detail_dim))  # fmt: skip
            vectors = np.hstack([vectors, np.asarray(details, np.float32)])
        return self.map_whole(vectors)

    def map_whole(self, vectors: np.ndarray) -> np.ndarray:
        """`apply` to rows that hold each vector and its details side by side."""
        mapped = (np.asarray(vectors, np.float32) - self.mean) @ self.projection
        norms = np.linalg.norm(mapped, axis=1, keepdims=True)
        return mapped / np.maximum(norms, 1e-12)

    # -- storage: one .npz in the library folder, written atomically ----------------------------

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            mean=self.mean,
            projection=self.projection,
            model_id=np.array(self.model_id),
            images=np.array(self.images),
            library_size=np.array(self.library_size),
            detail_dim=np.array(self.detail_dim),
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Whitening:
        try:
            with np.load(path, allow_pickle=False) as data:
                whitening = cls(
                    mean=data["mean"].astype(np.float32),
                    projection=data["projection"].astype(np.float32),
                    model_id=str(data["model_id"]),
                    images=int(data["images"]),
                    library_size=int(data["library_size"]),
                    detail_dim=int(data["detail_dim"]) if "detail_dim" in data else 0,
                )
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise WhiteningError(f"cannot read {path}: {exc}") from None
        dim = whitening.mean.shape[0] if whitening.mean.ndim == 1 else -1
        if whitening.projection.ndim != 2 or whitening.projection.shape[0] != dim:
            raise WhiteningError(f"{path} is damaged (shapes do not match)")
        if not 0 <= whitening.detail_dim < dim:
            raise WhiteningError(f"{path} is damaged (detail_dim {whitening.detail_dim})")
        if not (np.isfinite(whitening.mean).all() and np.isfinite(whitening.projection).all()):
            raise WhiteningError(f"{path} is damaged (not finite)")
        return whitening


def learn_whitening(
    vectors: np.ndarray,
    views: list[tuple[np.ndarray, np.ndarray]],
    *,
    model_id: str,
    library_size: int,
    shrink: float = SHRINK,
    dims: int = DIMS,
    detail_dim: int = 0,
    variants: np.ndarray | None = None,
) -> Whitening:
    """Learn a whitening from the library's `vectors` and `views`: pairs of (vectors of some
    images, vectors of an edited view of each, row for row). With `detail_dim`, the last that
    many columns of every vector are the model's details. Keeps `dims` axes, or fewer when
    the library's vectors span fewer (a library of 20 images: 19).

    `variants`: differences between the vectors of pairs of distinct pictures that the ranking
    should tell apart (tuning/variants.py). The axes kept are then those of the library's spread and
    theirs, counted VARIANT_WEIGHT times the library's, each stretched by its spread to the
    power VARIANT_STRETCH, so that what separates the variants weighs more."""
    # float32 for the large products (a library of 20,000 x 4,016: five times faster than
    # float64 here), float64 for the means and the eigenproblems
    vectors = np.asarray(vectors, np.float32)
    diffs = [np.asarray(a, np.float32) - np.asarray(b, np.float32) for a, b in views]
    diffs = np.concatenate(diffs) if diffs else np.zeros((0, vectors.shape[1]), np.float32)
    if len(vectors) < 2 or not len(diffs):
        raise ValueError("learning a whitening needs at least two images and one edited view")
    mean = vectors.mean(axis=0, dtype=np.float64)
    inverse_root = _inverse_root(diffs, vectors.shape[1], shrink)
    # then the library's own principal axes in that space, the largest `dims` of them
    spread_of, stretch = _spread_to_keep(
        inverse_root(vectors - mean.astype(np.float32)), variants, inverse_root
    )
    spread, rotation = _principal_axes(spread_of)
    keep = np.argsort(spread)[::-1][:dims]
    axes = rotation[:, keep] * (spread[keep] / spread[keep].max()) ** stretch
    return Whitening(
        mean=mean.astype(np.float32),
        projection=inverse_root(axes.T.astype(np.float32)).T,  # Cs^-1/2 is symmetric
        model_id=model_id,
        images=len(views[0][0]),
        library_size=library_size,
        detail_dim=detail_dim,
    )


def _inverse_root(diffs: np.ndarray, dim: int, shrink: float) -> Callable[[np.ndarray], np.ndarray]:
    """x -> x Cs^-1/2, for float32 rows x of `dim` numbers: Cs the covariance of the pairs'
    `diffs`."""
    # Cs^-1/2, with the eigenvalues shrunk towards their mean so that directions the few
    # pairs never moved are not blown up. Cs has rank <= len(diffs): its other eigenvalues are
    # 0, shrunk to `floor`, so Cs^-1/2 = I / sqrt(floor) + axes (1/sqrt(values) - 1/sqrt(floor)) axes^T
    values, axes = _principal_axes(diffs)
    floor = shrink * max(values.sum() / dim, 1e-12)
    gain = 1 / np.sqrt(values + floor) - 1 / np.sqrt(floor)
    axes32, gain32, base = axes.astype(np.float32), gain.astype(np.float32), np.float32(1 / np.sqrt(floor))  # fmt: skip
    if 2 * len(values) > dim:  # nearly full rank: one d x d matrix is cheaper than two passes
        dense = (axes32 * gain32) @ axes32.T
        dense[np.diag_indices(dim)] += base

        def inverse_root(x: np.ndarray) -> np.ndarray:
            return x @ dense
    else:

        def inverse_root(x: np.ndarray) -> np.ndarray:
            return x * base + ((x @ axes32) * gain32) @ axes32.T

    return inverse_root


def _spread_to_keep(
    spread_of: np.ndarray,
    variants: np.ndarray | None,
    inverse_root: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, float]:
    """(rows whose principal axes are kept, the power of their spread that stretches them):
    the library's whitened `spread_of` alone, or with the whitened `variants` when there are
    enough of them."""
    if variants is None or len(variants) < MIN_VARIANT_PAIRS:
        return spread_of, 0.0
    # the variants' differences, scaled so that their spread in all counts VARIANT_WEIGHT
    # times the library's, whatever their size (in tango_icons they are about as large;
    # among pictures that differ wholly, far smaller)
    apart = inverse_root(np.asarray(variants, np.float32))
    weight = VARIANT_WEIGHT * _mean_square(spread_of) / max(_mean_square(apart), 1e-12)
    rows = len(spread_of) + len(apart)  # _principal_axes divides by them
    spread_of = np.vstack([
        spread_of * np.float32(np.sqrt(rows / len(spread_of))),
        apart * np.float32(np.sqrt(weight * rows / len(apart))),
    ])  # fmt: skip
    return spread_of, VARIANT_STRETCH


def neighbour_pairs(
    whitening: Whitening,
    vectors: np.ndarray,
    *,
    neighbours: int = NEIGHBOURS,
    mapped: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of the library's own `vectors` (with their details, as learn_whitening takes them)
    that are each other's look-alikes under `whitening`, as one more pair of views for learning
    it again: what such pairs differ in (a drawing at another size, a flag's variant) is then
    weighed less. A pair is two vectors each among the other's `neighbours` nearest, whose
    similarity stands out (above both ends' next neighbour by at least the median margin of
    all such pairs: a picture with no true partner has close runners-up); the pairs are scaled
    so that their differences count NEIGHBOUR_WEIGHT as much as an edited view's. `mapped`:
    `whitening.map_whole(vectors)`, when the caller has it already."""
    vectors = np.asarray(vectors, np.float32)
    mapped = whitening.map_whole(vectors) if mapped is None else mapped
    n = len(mapped)
    k = min(neighbours, n - 2)
    if k < 1:
        return vectors[:0], vectors[:0]
    nearest = nearest_rows(mapped, k + 1)  # each row's k + 1 nearest, best first
    i = np.repeat(np.arange(n), k)
    j = nearest[:, :k].ravel()
    mutual = (nearest[j, :k] == i[:, None]).any(axis=1) & (i < j)
    i, j = i[mutual], j[mutual]
    if not len(i):
        return vectors[:0], vectors[:0]
    similarity = (mapped[i] * mapped[j]).sum(axis=1)
    runner_up = np.maximum(
        (mapped[i] * mapped[nearest[i, k]]).sum(axis=1),
        (mapped[j] * mapped[nearest[j, k]]).sum(axis=1),
    )
    margin = similarity - runner_up
    keep = margin >= np.quantile(margin, 1 - NEIGHBOUR_SHARE)
    scale = np.float32(np.sqrt(NEIGHBOUR_WEIGHT))
    return vectors[i[keep]] * scale, vectors[j[keep]] * scale


def nearest_rows(mapped: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """(len(rows), k): for each of `rows` (default: all), the k most similar other rows of
    `mapped` (L2-normalised), best first."""
    n = len(mapped)
    rows = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    k = min(k, n - 1)
    nearest = np.empty((len(rows), max(k, 0)), np.int64)
    if k < 1:
        return nearest
    for start in range(0, len(rows), 2048):  # blocks: 20,000 x 20,000 would be 1.6 GB
        block = rows[start : start + 2048]
        sims = mapped[block] @ mapped.T
        sims[np.arange(len(block)), block] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        nearest[start : start + 2048] = np.take_along_axis(top, order, axis=1)
    return nearest


def _mean_square(rows: np.ndarray) -> float:
    """The rows' mean squared length: their spread in all directions together."""
    return float(np.einsum("ij,ij->", rows, rows, dtype=np.float64)) / max(len(rows), 1)


def _principal_axes(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues and eigenvectors (columns) of rows^T rows / len(rows), less those that
    are zero. With fewer rows than dimensions they come from the rows' Gram matrix: a library
    of 500 images with effnet-lite0's 4,016 numbers then learns in a second, where the
    4,016 x 4,016 eigenproblem took 8 s (two of them per learning)."""
    n, dim = rows.shape
    rows = np.asarray(rows, np.float32)
    if n >= dim:
        values, axes = np.linalg.eigh((rows.T @ rows).astype(np.float64) / n)
    else:
        values, left = np.linalg.eigh((rows @ rows.T).astype(np.float64) / n)
        values = np.maximum(values, 0)
        axes = (rows.T @ left.astype(np.float32)) / np.sqrt(np.maximum(values, 1e-300) * n)
    # what is left of the zero ones is rounding (float32 products): no such direction
    kept = values > values.max(initial=0) * 1e-6
    return values[kept], axes[:, kept]
