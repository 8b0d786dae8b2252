"""`clip-vit-b-32`: OpenAI's CLIP ViT-B/32 through open_clip. Pictures and text in one 512-d
space, so that "red dragon sprite" finds pictures of one.

Loading is open_clip's own (`create_model("ViT-B-32", pretrained=FILE)`, QuickGELU as the
OpenAI weights were trained with), which reads safetensors, state dicts and OpenAI's original
TorchScript `ViT-B-32.pt`. Downloads come from the Hugging Face copy of the OpenAI weights,
`timm/vit_base_patch32_clip_224.openai` (open_clip's own source for the `openai` tag), as one
plain file in the library's model cache, fetched by the same downloader as the torchvision
weights (huggingface_hub's would retry a dead network for half a minute before giving up).

Preprocessing is open_clip's evaluation transform for these weights: shorter side to 224
(bicubic), centre crop 224, CLIP's mean and std. Text goes through open_clip's BPE tokenizer
(its vocabulary ships inside the package: no download), 77 tokens at most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .base import Embedder, ModelUnavailableError, l2_normalise
from .torch_runtime import (
    CentreCropPreprocessor,
    WeightsSource,
    download_url,
    import_runtime,
    set_torch_threads,
    to_tensor,
)

EXTRA = "clip"  # pip install 'lookalike[clip]'
RUNTIME = ("torch", "torchvision", "open_clip")
ARCH = "ViT-B-32"
HF_REPO = "timm/vit_base_patch32_clip_224.openai"
HF_FILE = "open_clip_model.safetensors"
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


HF_URL = f"https://huggingface.co/{HF_REPO}/resolve/main/{HF_FILE}"

SOURCE = WeightsSource(
    model="clip-vit-b-32",
    # the download's name first; then open_clip's other name for it, then OpenAI's original
    files=(HF_FILE, "open_clip_pytorch_model.bin", "ViT-B-32.pt"),
    url=HF_URL,
    download=lambda cache_dir: download_url(HF_URL, cache_dir, HF_FILE),
)


class ClipViTB32(Embedder):
    name = "clip-vit-b-32"
    version = "1"
    dim = 512
    supports_text = True
    source = SOURCE

    def __init__(
        self,
        *,
        weights: Path | None = None,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ):
        torch = import_runtime("torch", EXTRA)
        open_clip = import_runtime("open_clip", EXTRA)
        path = SOURCE.resolve(weights, cache_dir)
        try:
            model = open_clip.create_model(ARCH, pretrained=str(path), force_quick_gelu=True)
        except Exception as exc:  # a wrong or truncated file: say which one
            raise ModelUnavailableError(
                f"cannot load {self.name} weights from {path}: {exc} "
                f"(expected the CLIP ViT-B/32 weights of {SOURCE.url})"
            ) from None
        self.weights_path = path
        self._torch = torch
        self._tokenizer = open_clip.get_tokenizer(ARCH)
        set_torch_threads(torch, threads)
        self._model = model.eval()

    def preprocessor(self) -> CentreCropPreprocessor:
        return CentreCropPreprocessor(size=224, crop=224, resample=Image.BICUBIC)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = to_tensor(torch, batch, CLIP_MEAN, CLIP_STD)
        with torch.inference_mode():
            out = self._model.encode_image(x)
        return l2_normalise(out.float().numpy())

    def embed_text(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        tokens = self._tokenizer(list(texts))  # truncated to the 77-token context
        with torch.inference_mode():
            out = self._model.encode_text(tokens)
        return l2_normalise(out.float().numpy())
