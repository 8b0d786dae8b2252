"""What the torch-based embedders (VGG16, ResNet50, CLIP) share: importing the optional runtime,
finding their weights, and the centre-crop preprocessing they were trained with.

Nothing here imports torch at module level: `lookalike models`, the default embedder and the
decoding workers (which unpickle `CentreCropPreprocessor`) must work without the extras.

Where weights come from, first match wins:
1. the file or folder the user gave (`lookalike --weights PATH`, or $LOOKALIKE_WEIGHTS);
2. the library's model cache, `<library>/models/<file name>`;
3. a download into that cache, with a progress bar, where the machine has network access.
Without any of them, `ModelUnavailableError` says which file to fetch and where to put it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ModelUnavailableError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def import_runtime(module: str, extra: str):
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"this model needs {module}, which is not installed: "
            f"pip install 'lookalike[{extra}]' ({exc})"
        ) from None


def set_torch_threads(torch, threads: int | None) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


@dataclass(frozen=True)
class CentreCropPreprocessor:
    """Shorter side resized to `size`, then the central `crop` x `crop` square: torchvision's
    `Resize(size) + CenterCrop(crop)` on PIL pictures (tests check it against them), done with
    Pillow alone so that the decoding workers need no torch. Returns uint8 HWC; the embedder
    normalises in its batch."""

    size: int = 256  # also tells the decoder how far a big JPEG may be shrunk while decoding
    crop: int = 224
    resample: int = Image.BILINEAR

    def __call__(self, image: Image.Image) -> np.ndarray:
        w, h = image.size
        if min(w, h) != self.size:
            # torchvision's Resize(int): the shorter side to `size`, the other one truncated
            if w <= h:
                new = (self.size, int(self.size * h / w))
            else:
                new = (int(self.size * w / h), self.size)
            image = image.resize(new, self.resample)
        w, h = image.size
        # torchvision's CenterCrop rounds the offsets (and pads pictures smaller than the crop,
        # which cannot happen after the resize above as long as crop <= size)
        left = int(round((w - self.crop) / 2.0))
        top = int(round((h - self.crop) / 2.0))
        image = image.crop((left, top, left + self.crop, top + self.crop))
        return np.asarray(image, dtype=np.uint8)


def to_tensor(torch, batch: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """(N, H, W, 3) uint8 -> normalised (N, 3, H, W) float32 tensor."""
    x = (batch.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights are published, and the names its file goes by."""

    model: str
    files: tuple[str, ...]  # accepted names, the one downloads are saved as first
    url: str  # what `lookalike models` shows, and what to fetch by hand for an offline machine
    download: Callable[[Path], Path]  # into the cache folder; returns the file

    def find(self, weights: Path | None, cache_dir: Path | None) -> Path | None:
        """The user's file, or the cached one; None when it must be downloaded."""
        if weights is not None:
            weights = Path(weights).expanduser()
            if weights.is_file():
                return weights
            if weights.is_dir():
                for name in self.files:
                    if (weights / name).is_file():
                        return weights / name
                raise ModelUnavailableError(
                    f"no weights for {self.model} in {weights}: expected one of "
                    f"{', '.join(self.files)} (download {self.url})"
                )
            raise ModelUnavailableError(f"--weights {weights}: no such file or folder")
        if cache_dir is not None:
            for name in self.files:
                if (cache_dir / name).is_file():
                    return cache_dir / name
        return None

    def resolve(self, weights: Path | None, cache_dir: Path | None) -> Path:
        found = self.find(weights, cache_dir)
        if found is not None:
            return found
        if cache_dir is None:
            raise ModelUnavailableError(self._how_to(None, "no model cache to download into"))
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self.download(cache_dir)
        except Exception as exc:  # network, proxy, HTTP or disk errors: all end the same way
            raise ModelUnavailableError(
                self._how_to(cache_dir, f"{type(exc).__name__}: {exc}")
            ) from exc

    def _how_to(self, cache_dir: Path | None, reason: str) -> str:
        where = f"copy it into {cache_dir}/, or " if cache_dir is not None else ""
        return (
            f"the weights of {self.model} are not here and could not be downloaded ({reason}). "
            f"Fetch {self.url} on a machine with network access (saved as {self.files[0]}), "
            f"then {where}pass it with `lookalike --weights FILE` (or $LOOKALIKE_WEIGHTS)"
        )


def download_url(url: str, cache_dir: Path, name: str, hash_prefix: str | None = None) -> Path:
    """torch.hub's downloader: a progress bar, a temporary file renamed when complete, and the
    sha256 prefix that torchvision puts in its file names checked."""
    torch = import_runtime("torch", "torch")
    target = cache_dir / name
    torch.hub.download_url_to_file(url, str(target), hash_prefix, progress=True)
    return target


def hash_prefix(file_name: str) -> str | None:
    """torchvision names its files `<name>-<first 8+ hex of the sha256>.pth`."""
    stem = file_name.rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None
