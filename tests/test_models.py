"""The torch embedders (VGG16, ResNet50, CLIP) with random weights, loaded by their real code:
vector shapes and norms, the activations they take, preprocessing against the libraries' own
transforms, CLIP's text in the pictures' space, and where weights come from (or why not)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest

from lookalike.embed import MODELS, ModelUnavailableError, TextNotSupportedError, create_embedder

from .conftest import make_picture
from .model_weights import TORCH_MODELS

# a square, a wide and a tall picture, one smaller than the crop
PICTURES = [make_picture(1, (96, 96)), make_picture(2, (300, 120)), make_picture(3, (40, 200))]


@pytest.fixture(scope="module")
def embedders(random_weights):
    made = {}

    def get(name):
        if name not in made:
            made[name] = create_embedder(name, weights=random_weights(name), threads=2)
        return made[name]

    yield get
    made.clear()


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_unit_vectors_of_the_declared_dimension(embedders, name):
    embedder = embedders(name)
    vectors = embedder.embed_images(PICTURES)
    assert embedder.dim == MODELS[name].dim and embedder.name == name
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)  # pictures stay apart
    alone = embedder.embed_images(PICTURES[1:2])[0]
    assert np.allclose(alone, vectors[1], atol=1e-4)  # independent of the batch


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_preprocessing_is_the_weights_own_evaluation_transform(embedders, name):
    """Our Pillow-only preprocessing (it runs in the decoding workers, without torch) and the
    normalisation in `embed` give what torchvision's / open_clip's transforms give."""
    import torch

    from lookalike.embed.torch_runtime import IMAGENET_MEAN, IMAGENET_STD, to_tensor

    embedder = embedders(name)
    if name == "clip-vit-b-32":
        import open_clip

        from lookalike.embed.clip_vit_b32 import CLIP_MEAN, CLIP_STD

        theirs = open_clip.image_transform(
            224, is_train=False, mean=CLIP_MEAN.tolist(), std=CLIP_STD.tolist(),
            interpolation="bicubic", resize_mode="shortest",
        )  # fmt: skip
        mean, std = CLIP_MEAN, CLIP_STD
    else:
        from torchvision.models import ResNet50_Weights, VGG16_Weights

        enum = ResNet50_Weights if name == "resnet50" else VGG16_Weights
        theirs = enum.DEFAULT.transforms()
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    prep = embedder.preprocessor()
    for picture in PICTURES + [make_picture(4, (1000, 700))]:
        ours = to_tensor(torch, prep(picture)[None], mean, std)[0]
        assert ours.shape == (3, 224, 224)
        assert torch.allclose(ours, theirs(picture), atol=1e-5)


def test_the_vectors_are_the_layers_the_seeds_used(embedders):
    """fc2 after its ReLU, pool5 max-pooled, ResNet's average pool: taken from a plain forward
    pass of the whole network with hooks, not from the code under test."""
    import torch

    vgg = embedders("vgg16-fc2")
    batch = np.stack([vgg.preprocessor()(p) for p in PICTURES])
    grabbed = {}
    net = vgg._model
    hooks = [
        net.classifier[4].register_forward_hook(lambda m, i, o: grabbed.update(fc2=o)),
        net.features.register_forward_hook(lambda m, i, o: grabbed.update(pool5=o)),
    ]
    from lookalike.embed.torch_runtime import IMAGENET_MEAN, IMAGENET_STD, to_tensor

    with torch.inference_mode():
        net(to_tensor(torch, batch, IMAGENET_MEAN, IMAGENET_STD))
    for h in hooks:
        h.remove()
    fc2 = grabbed["fc2"].numpy()
    fc2 /= np.linalg.norm(fc2, axis=1, keepdims=True)
    assert np.allclose(vgg.embed(batch), fc2, atol=1e-5)
    assert (vgg.embed(batch) >= 0).all()  # after the ReLU
    pool = grabbed["pool5"].amax(dim=(2, 3)).numpy()
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    assert np.allclose(embedders("vgg16-maxpool").embed(batch), pool, atol=1e-5)

    resnet = embedders("resnet50")
    batch = np.stack([resnet.preprocessor()(p) for p in PICTURES])
    net = resnet._model
    hook = net.avgpool.register_forward_hook(lambda m, i, o: grabbed.update(avg=o))
    with torch.inference_mode():
        net(to_tensor(torch, batch, IMAGENET_MEAN, IMAGENET_STD))
    hook.remove()
    avg = grabbed["avg"].flatten(1).numpy()
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    assert np.allclose(resnet.embed(batch), avg, atol=1e-5)


def test_clip_puts_text_and_pictures_in_one_space(embedders):
    import open_clip
    import torch

    clip = embedders("clip-vit-b-32")
    assert clip.supports_text and MODELS["clip-vit-b-32"].text
    texts = ["red dragon sprite", "a blue potion", "red dragon sprite"]
    vectors = clip.embed_text(texts)
    assert vectors.shape == (3, clip.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    # what open_clip itself gives for the text and the pictures, normalised
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    with torch.inference_mode():
        text = clip._model.encode_text(tokenizer(texts[:1]))[0].numpy()
        image = clip._model.encode_image(preprocess(PICTURES[1])[None])[0].numpy()
    assert np.allclose(vectors[0], text / np.linalg.norm(text), atol=1e-5)
    pictures = clip.embed_images(PICTURES)
    assert np.allclose(pictures[1], image / np.linalg.norm(image), atol=1e-4)
    # one space: a text ranks pictures by the dot product, as a picture query does
    scores = pictures @ vectors[0]
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0 + 1e-6)


@pytest.mark.parametrize("name", ["effnet-lite0", "resnet50"])
def test_picture_models_refuse_text_clearly(embedders, name):
    embedder = create_embedder(name) if name.startswith("effnet") else embedders(name)
    assert not embedder.supports_text and not MODELS[name].text
    with pytest.raises(TextNotSupportedError, match="embeds pictures only"):
        embedder.embed_text(["cat"])


def test_weights_from_a_folder_from_the_cache_and_wrong_ones(random_weights, tmp_path):
    file = random_weights("resnet50")
    assert create_embedder("resnet50", weights=file.parent).weights_path == file  # a folder
    cache = tmp_path / "models"
    cache.mkdir()
    shutil.copy(file, cache / file.name)
    cached = create_embedder("resnet50", cache_dir=cache)  # no --weights: the library's cache
    assert cached.weights_path == cache / file.name
    with pytest.raises(ModelUnavailableError, match="cannot load vgg16-fc2 weights from"):
        create_embedder("vgg16-fc2", weights=file)  # ResNet's weights for VGG
    with pytest.raises(ModelUnavailableError, match="expected one of vgg16-397923af.pth"):
        create_embedder("vgg16-fc2", weights=tmp_path)
    # a weights folder set for the torch models does not disturb the shipped one
    assert create_embedder("effnet-lite0", weights=file.parent).dim == 1280


@pytest.fixture
def offline(monkeypatch):
    """No network: every download goes through a proxy that refuses connections (port 9,
    'discard', is closed here), so the real download code runs and fails as it would."""
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    with fresh_url_opener():
        yield


@contextmanager
def fresh_url_opener():
    """urllib builds its global opener, proxies included, from the environment of its first
    use: rebuild it from this test's environment, and forget it afterwards."""
    urllib.request.install_opener(urllib.request.build_opener())
    try:
        yield
    finally:
        urllib.request.install_opener(None)  # rebuilt lazily from the environment then


@pytest.mark.parametrize("name", ["vgg16-fc2", "resnet50", "clip-vit-b-32"])
def test_without_weights_or_network_the_error_says_how_to_bring_them(
    random_weights, offline, tmp_path, name
):
    random_weights(name)  # skips without the runtime
    cache = tmp_path / "library" / "models"
    with pytest.raises(ModelUnavailableError) as caught:
        create_embedder(name, cache_dir=cache)
    message = str(caught.value)
    assert "could not be downloaded" in message
    assert MODELS[name].weights.split("/")[2] in message  # the host to fetch from
    assert str(cache) in message and "--weights" in message
    assert list(cache.iterdir()) == []  # no partial file left behind


def test_the_cli_and_default_model_work_without_torch(tmp_path):
    """The default install has no torch: listing models says which extra to install, the
    default embedder works, and building a torch model says what to pip install."""
    script = """
import sys
for blocked in ("torch", "torchvision", "open_clip"):
    sys.modules[blocked] = None  # import fails, find_spec says absent
from lookalike.cli import main
from lookalike.embed.base import ModelUnavailableError
from lookalike.embed.registry import create_embedder
code = main(["-L", sys.argv[1], "models"])
create_embedder("effnet-lite0").embed_images([__import__("PIL.Image").Image.new("RGB", (8, 8))])
try:
    create_embedder("resnet50")
except ModelUnavailableError as exc:
    print("ERROR:", exc)
sys.exit(code)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "lib")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "installed" in lines["effnet-lite0"] and "shipped" in lines["effnet-lite0"]
    assert "pip install 'lookalike[torch]'" in lines["resnet50"]
    assert "pip install 'lookalike[clip]'" in lines["clip-vit-b-32"]
    assert "ERROR: this model needs torch" in out.stdout and "lookalike[torch]" in out.stdout


@pytest.fixture
def local_http(tmp_path, monkeypatch):
    """A plain HTTP server on 127.0.0.1 serving a folder: downloads without the internet."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for var in ("NO_PROXY", "no_proxy"):  # a proxy set for the package index is not for this
        monkeypatch.setenv(var, "127.0.0.1")
    with fresh_url_opener():
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_weights_are_downloaded_into_the_cache_and_checked(random_weights, local_http, tmp_path):
    """The download path itself, against a local server: the file lands in the library's
    cache under its name, torchvision's hash-in-the-name is checked, and a corrupt download
    leaves nothing behind."""
    import hashlib

    from lookalike.embed.torchvision_base import torchvision_source

    folder, base = local_http
    data = random_weights("resnet50").read_bytes()
    good = f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (folder / good).write_bytes(data)
    cache = tmp_path / "library" / "models"
    source = torchvision_source("resnet50", f"{base}/{good}")
    path = source.resolve(None, cache)
    assert path == cache / good and path.read_bytes() == data
    (folder / good).unlink()
    assert source.resolve(None, cache) == path  # found in the cache: not fetched again
    (folder / "resnet50-00000000.pth").write_bytes(data)  # the name's hash does not match
    bad = torchvision_source("resnet50", f"{base}/resnet50-00000000.pth")
    with pytest.raises(ModelUnavailableError, match="could not be downloaded"):
        bad.resolve(None, tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []
