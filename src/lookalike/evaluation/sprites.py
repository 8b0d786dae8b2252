"""`lookalike eval --sprites DATASET_DIR`: does a sprite cut from a sheet find its sheet?

Sheets are the set's pictures in which pictures/tiles.py finds at least two sprites (a sample of them).
From each, a few sprites are cut as an artist would cut them, with some of the sheet around:
either the sprite's box grown by a random margin of 0-12 pixels a side (default), or, with
`cell`, the whole grid cell of that size holding the sprite's centre. The sheets are indexed
twice, whole and with `--tiles`, and every cut sprite is searched as it is and with `--trim`.
A search succeeds at k when one of its k best results (collapsed, as users see them) is its
sheet or a sprite of it. Other sheets, recoloured variants included, count as misses.
"""

from __future__ import annotations

import io
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.ingest import Indexer
from lookalike.library import Library
from lookalike.pictures import DecodeError, decode_image, find_tiles
from lookalike.search import Searcher
from lookalike.tuning import learn_if_due

from .metrics import read_groundtruth
from .retrieval import ListedFiles

MAX_MARGIN = 12


@dataclass
class SpriteRun:
    tiles: bool
    trim: bool
    recall_at_1: float
    recall_at_10: float
    query_ms_p50: float


@dataclass
class SpriteReport:
    dataset: str
    sheets: int
    queries: int
    cut: str
    images: dict[str, int] = field(default_factory=dict)  # library size, whole and tiled
    runs: list[SpriteRun] = field(default_factory=list)
    model: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_sprites(
    dataset: Path,
    *,
    sheets: int = 100,
    cuts: int = 3,
    cell: int | None = None,
    seed: int = 0,
    model: str | None = None,
    weights: Path | None = None,
    progress: bool | None = False,
    tune: bool = True,  # learn the ranking as `lookalike index` would (tuning/tuner.py)
) -> SpriteReport:
    started = time.monotonic()
    dataset = Path(dataset).resolve()
    rng = random.Random(seed)
    rows = read_groundtruth(dataset)
    rng.shuffle(rows)
    chosen, queries = [], []
    for row in rows:
        if len(chosen) == sheets:
            break
        try:
            picture = decode_image((dataset / row.path).read_bytes(), keep_alpha=True).image
        except (OSError, DecodeError):
            continue
        boxes = find_tiles(picture)
        if len(boxes) < 2:
            continue
        chosen.append(row)
        source = str(dataset / row.path)
        for box in rng.sample(boxes, min(cuts, len(boxes))):
            queries.append((source, _cut(picture, box, cell, rng)))
    report = SpriteReport(
        str(dataset), len(chosen), len(queries), f"{cell}-px cells" if cell else "margins 0-12 px"
    )
    with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
        for tiles in (False, True):
            root = Path(tmp) / f"tiles-{tiles}"
            with Library.open(root, write=True, model=model, weights=weights) as library:
                Indexer(library, tiles=tiles, progress=progress).run([ListedFiles(dataset, chosen)])
                if tune:  # as `lookalike index` does
                    learn_if_due(library, progress=progress)
                report.images["tiled" if tiles else "whole"] = len(library.index)
                report.model = library.embedder.model_id
                for trim in (False, True):
                    report.runs.append(_search(library, queries, tiles=tiles, trim=trim))
    report.seconds = time.monotonic() - started
    return report


def _cut(picture: Image.Image, box, cell: int | None, rng: random.Random) -> bytes:
    if cell:
        cx, cy = box.x + box.w // 2, box.y + box.h // 2
        x0, y0 = cx // cell * cell, cy // cell * cell
        region = (x0, y0, x0 + cell, y0 + cell)
    else:
        grow = [rng.randint(0, MAX_MARGIN) for _ in range(4)]
        region = (
            box.x - grow[0],
            box.y - grow[1],
            box.x + box.w + grow[2],
            box.y + box.h + grow[3],
        )
    left, top, right, bottom = region
    region = (max(left, 0), max(top, 0), min(right, picture.width), min(bottom, picture.height))
    out = io.BytesIO()
    picture.crop(region).save(out, format="PNG")
    return out.getvalue()


def _search(library: Library, queries, *, tiles: bool, trim: bool) -> SpriteRun:
    searcher = Searcher(library, trim=trim)
    found1, found10, latencies = [], [], []
    for source, data in queries:
        t0 = time.perf_counter()
        hits = searcher.search_vector(searcher.bytes_vector(data), 10)
        latencies.append(time.perf_counter() - t0)
        sheets = [
            {p.source for h in (hit, *hit.duplicates) for p in h.record.places} for hit in hits
        ]
        found1.append(bool(sheets) and source in sheets[0])
        found10.append(any(source in s for s in sheets))
    return SpriteRun(
        tiles,
        trim,
        float(np.mean(found1)) if found1 else 0.0,
        float(np.mean(found10)) if found10 else 0.0,
        float(np.median(latencies) * 1000) if latencies else 0.0,
    )
