"""Known embedders by name. Adding a model = one module + one `ModelInfo` here.

Everything here is cheap to import: the facts `lookalike models` lists are written out, and each
model's module (and its runtime: onnxruntime, torch, open_clip) is imported only when built.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .base import Embedder

DEFAULT_MODEL = "effnet-lite0"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    dim: int
    text: bool  # embeds text into the pictures' space (search by text)
    module: str  # in lookalike.embed
    cls: str
    runtime: tuple[str, ...]  # importable modules it needs
    extra: str | None  # `pip install 'lookalike[EXTRA]'` installs them; None: always installed
    weights: str  # where the weights come from
    licence: str  # of the weights
    about: str

    def runtime_installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.runtime)

    def load(self) -> type[Embedder]:
        module = importlib.import_module(f"{__package__}.{self.module}")
        return getattr(module, self.cls)

    def weights_state(self, weights: Path | None = None, cache_dir: Path | None = None) -> str:
        """'shipped', 'given: PATH', 'cached: PATH' or 'missing (...)', without loading them."""
        if self.extra is None:
            return "shipped"
        from .base import ModelUnavailableError

        try:
            found = self.load().source.find(weights, cache_dir)
        except ModelUnavailableError as exc:
            return f"missing ({exc})"
        if found is None:
            return "missing (downloaded on first use)"
        return f"{'given' if weights is not None else 'cached'}: {found}"


_TORCHVISION = ("torch", "torchvision")
_TV_LICENCE = "code BSD-3-Clause; weights trained on ImageNet (see docs/models.md)"

MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "effnet-lite0", 1280, False, "effnet_lite0", "EffNetLite0", ("onnxruntime",), None,
            "the lookalike package (embed/weights/effnet-lite0.onnx)", "Apache-2.0",
            "the default: EfficientNet-Lite0, GeM-pooled, onnxruntime, no torch",
        ),
        ModelInfo(
            "effnet-lite0-grey", 1280, False, "effnet_lite0", "EffNetLite0Grey",
            ("onnxruntime",), None,
            "the lookalike package (embed/weights/effnet-lite0.onnx)", "Apache-2.0",
            "luminance only: colour changes that keep brightness",
        ),
        ModelInfo(
            "effnet-lite0-shape", 1280, False, "effnet_lite0", "EffNetLite0Shape",
            ("onnxruntime",), None,
            "the lookalike package (embed/weights/effnet-lite0.onnx)", "Apache-2.0",
            "shapes, not colours: palette swaps and recolours of game art match",
        ),
        ModelInfo(
            "vgg16-fc2", 4096, False, "vgg16", "VGG16Fc2", _TORCHVISION, "torch",
            "https://download.pytorch.org/models/vgg16-397923af.pth", _TV_LICENCE,
            "VGG16 fc2 after ReLU, as the seed systems used",
        ),
        ModelInfo(
            "vgg16-maxpool", 512, False, "vgg16", "VGG16MaxPool", _TORCHVISION, "torch",
            "https://download.pytorch.org/models/vgg16-397923af.pth", _TV_LICENCE,
            "VGG16 last conv block, global max pooling",
        ),
        ModelInfo(
            "resnet50", 2048, False, "resnet50", "ResNet50", _TORCHVISION, "torch",
            "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", _TV_LICENCE,
            "ResNet50 (IMAGENET1K_V2), global average pooling",
        ),
        ModelInfo(
            "clip-vit-b-32", 512, True, "clip_vit_b32", "ClipViTB32",
            ("torch", "torchvision", "open_clip"), "clip",
            "https://huggingface.co/timm/vit_base_patch32_clip_224.openai", "MIT (OpenAI CLIP)",
            "OpenAI CLIP ViT-B/32: pictures and text in one space",
        ),
    )
}  # fmt: skip


def model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)  # the default first
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


def create_embedder(
    name: str,
    *,
    weights: Path | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    """Build the named embedder. `weights`: a file or folder the user gave; `cache_dir`: the
    library's model cache (where downloads go). Raises ModelUnavailableError with what to do."""
    info = model_info(name)
    cls = info.load()
    if info.extra is None:
        # the shipped ONNX model: `weights` may name another export of it; a folder (say
        # $LOOKALIKE_WEIGHTS holding the torch models' files) is not for it
        other = weights is not None and Path(weights).suffix == ".onnx"
        return cls(threads=threads, **({"weights": Path(weights)} if other else {}))
    return cls(weights=weights, cache_dir=cache_dir, threads=threads)
