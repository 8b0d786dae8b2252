"""Shared fixtures: pictures made by code, and libraries built from them.

The pictures are random compositions of coloured shapes: different seeds give clearly
different images to the CNN, and a re-encoded or rescaled copy stays a near-duplicate.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lookalike.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def make_picture(seed: int, size: tuple[int, int] = (96, 96), mode: str = "RGB") -> Image.Image:
    rng = random.Random(seed)
    background = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.randint(3, 7)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(w // 6, w // 2), y0 + rng.randint(h // 6, h // 2)
        shape = rng.choice(("rectangle", "ellipse", "line", "polygon"))
        if shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == "line":
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randint(2, 8))
        else:
            points = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=colour)
    return image.convert(mode) if mode != "RGB" else image


def make_icon(seed: int, size: int = 24) -> Image.Image:
    """Pixel art: a few hard-edged shapes drawn at 4x and shrunk by nearest neighbour."""
    return make_picture(seed, size=(size * 4, size * 4)).resize((size, size), Image.NEAREST)


def index_icons(tmp_path: Path, count: int, *, first_seed: int, sizes, seed: int):
    """`count` icons (iconNN.png, sides drawn from `sizes`) in tmp_path/icons, indexed with the
    default model into tmp_path/library; returns (library root, icon folder)."""
    from lookalike.ingest import Indexer
    from lookalike.library import Library
    from lookalike.sources import FolderSource

    folder = tmp_path / "icons"
    folder.mkdir()
    rng = random.Random(seed)
    for i in range(count):
        make_icon(first_seed + i, rng.choice(sizes)).save(folder / f"icon{i:02d}.png")
    root = tmp_path / "library"
    with Library.open(root, write=True) as library:
        Indexer(library, progress=False).run([FolderSource(folder)])
    return root, folder


def save_picture(path: Path, seed: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt_kwargs = kwargs.pop("save", {})
    make_picture(seed, **kwargs).save(path, **fmt_kwargs)
    return path


@pytest.fixture
def picture_folder(tmp_path: Path) -> Path:
    """12 distinct PNGs in a small tree (one in a sub-folder with a space in its name)."""
    folder = tmp_path / "pictures"
    for seed in range(10):
        save_picture(folder / f"pic{seed:02d}.png", seed)
    save_picture(folder / "sub folder" / "pic10.png", 10)
    save_picture(folder / "sub folder" / "deeper" / "pic11.png", 11)
    return folder


@pytest.fixture
def library_path(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def run_cli(library_path: Path, capsys):
    """Run `lookalike -L <library> ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main(["-L", str(library_path), *map(str, args)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def pytest_report_header(config):
    """The free disk where tests write, first thing in the log: the suite needs about 1 GB
    at its peak (the model tests' random weights), and a machine short of it fails in ways
    that do not say so."""
    import tempfile

    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    warning = "  (under the ~1 GB the suite needs at its peak)" if free_gb < 1.5 else ""
    return f"free disk in {tempfile.gettempdir()}: {free_gb:.1f} GB{warning}"


@pytest.fixture(autouse=True)
def _no_library_env(monkeypatch):
    monkeypatch.delenv("LOOKALIKE_LIBRARY", raising=False)
    # Keep tests quick on 2 cores: one decoding worker unless a test asks for more.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """model name -> a file of random weights for it (written once per test module, and
    deleted after it: VGG16's and CLIP's together take ~600 MB, and a CI run short of disk
    failed from the model tests on while they were kept for the whole session); skips without
    torch / open_clip outside CI."""
    from .model_weights import require, write_random_weights

    folder = tmp_path_factory.mktemp("random-weights")

    def weights_for(model: str) -> Path:
        require("torch", "torchvision", *(("open_clip",) if model.startswith("clip") else ()))
        return write_random_weights(model, folder)

    yield weights_for
    shutil.rmtree(folder, ignore_errors=True)  # pytest would keep it with its last 3 temp trees
