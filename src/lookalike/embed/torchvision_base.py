"""`TorchvisionEmbedder`: an ImageNet classifier from torchvision, cut before its classifier.

Loading is torchvision's own: the architecture built with `weights=None`, then the state dict
of the published ImageNet weights (`torch.load(weights_only=True)`, so a weights file cannot run
code) loaded strictly. Where the file comes from: see `torch_runtime.WeightsSource`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Embedder, ModelUnavailableError, l2_normalise
from .torch_runtime import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CentreCropPreprocessor,
    WeightsSource,
    download_url,
    hash_prefix,
    import_runtime,
    set_torch_threads,
    to_tensor,
)

EXTRA = "torch"  # pip install 'lookalike[torch]'
RUNTIME = ("torch", "torchvision")


def torchvision_source(model: str, url: str) -> WeightsSource:
    name = url.rsplit("/", 1)[-1]
    return WeightsSource(
        model=model,
        files=(name,),
        url=url,
        download=lambda cache_dir: download_url(url, cache_dir, name, hash_prefix(name)),
    )


class TorchvisionEmbedder(Embedder):
    """Subclasses say which architecture (`build`), which weights (`source`), how the
    pictures are prepared (`resize`) and which activations become the vector (`features`)."""

    source: WeightsSource
    resize: int = 256  # the weights' own evaluation transform: resize, then a 224 centre crop
    crop: int = 224

    def __init__(
        self,
        *,
        weights: Path | None = None,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ):
        torch = import_runtime("torch", EXTRA)
        torchvision = import_runtime("torchvision", EXTRA)
        path = self.source.resolve(weights, cache_dir)
        model = self.build(torchvision.models)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # a wrong or truncated file: say which one
            raise ModelUnavailableError(
                f"cannot load {self.name} weights from {path}: {exc} "
                f"(expected the state dict of {self.source.url})"
            ) from None
        self.weights_path = path
        self._torch = torch
        set_torch_threads(torch, threads)
        self._model = model.eval()

    def build(self, models):
        """The architecture with random weights, e.g. `models.vgg16(weights=None)`."""
        raise NotImplementedError

    def features(self, model, x):
        """The batch's activations that make the vector, (N, dim)."""
        raise NotImplementedError

    def preprocessor(self) -> CentreCropPreprocessor:
        return CentreCropPreprocessor(size=self.resize, crop=self.crop)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = to_tensor(torch, batch, IMAGENET_MEAN, IMAGENET_STD)
        with torch.inference_mode():
            out = self.features(self._model, x)
        return l2_normalise(out.float().numpy())
