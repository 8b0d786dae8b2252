"""Random-weight files for the torch models, written the way the published ones are (a state
dict; open_clip's names for CLIP), so tests go through the real loading code without any
download. Half precision halves the disk written; loading casts back to float32."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# model -> (file name the loader looks for, what builds the architecture)
FILES = {
    "vgg16-fc2": "vgg16-397923af.pth",
    "vgg16-maxpool": "vgg16-397923af.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
    "clip-vit-b-32": "open_clip_model.safetensors",
}
TORCH_MODELS = tuple(FILES)


def require(*modules: str) -> None:
    """Skip without the optional runtime, except in CI, where `make test` installs it."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"CI needs {', '.join(missing)} (make test installs the dev extra)")
    pytest.skip(f"needs {', '.join(missing)}")


def write_random_weights(model: str, folder: Path) -> Path:
    import torch

    path = folder / FILES[model]
    if path.exists():
        return path
    torch.manual_seed(0)
    if model == "clip-vit-b-32":
        import open_clip
        from safetensors.torch import save_file

        net = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
        state = {k: v.half().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(path))
    else:
        import torchvision

        build = torchvision.models.resnet50 if model == "resnet50" else torchvision.models.vgg16
        net = build(weights=None)
        torch.save({k: v.half() for k, v in net.state_dict().items()}, path)
    return path
