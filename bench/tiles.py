"""Does one sprite find the sheet it was cut from? Sheets indexed whole vs. with --tiles.

    python bench/tiles.py [--data ../shared/bench-data] [--sheets 100] [--cuts 3] [--seed 0]

A random sample of lpc_spritesheets sheets (64 x 64 frame grids) is indexed twice: whole, and
with `--tiles` (every sprite of a sheet also indexed, tiles.py). Queries are frames cut from
those sheets as an artist would cut them: a whole 64 x 64 cell, with its transparent margin,
saved as its own PNG; searched as they are, and with `search --trim`. A query succeeds at k when one of the k best (collapsed) results is its
sheet, or a sprite of its sheet. Recoloured variants of a sheet are other sheets here, so they
count as misses.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.indexing import index_paths
from lookalike.library import Library
from lookalike.search import Searcher

CELL = 64


def cut_frames(sheet: Path, count: int, rng: random.Random) -> list[bytes]:
    image = Image.open(sheet).convert("RGBA")
    cells = [
        (x, y)
        for y in range(0, image.height - CELL + 1, CELL)
        for x in range(0, image.width - CELL + 1, CELL)
    ]
    rng.shuffle(cells)
    frames = []
    for x, y in cells:
        frame = image.crop((x, y, x + CELL, y + CELL))
        if (np.asarray(frame)[:, :, 3] > 0).mean() >= 0.05:  # a frame, not an empty cell
            out = io.BytesIO()
            frame.save(out, format="PNG")
            frames.append(out.getvalue())
        if len(frames) == count:
            break
    return frames


def measure(library_path: Path, sheets: list[Path], queries, *, tiles: bool) -> None:
    with Library.open(library_path, write=True) as library:
        started = time.perf_counter()
        report = index_paths(library, sheets, tiles=tiles, progress=False)
        seconds = time.perf_counter() - started
        print(
            f"{'--tiles' if tiles else 'whole'}: {len(sheets)} sheets -> {len(library.index):,} "
            f"images ({report.tiles:,} sprites found) indexed in {seconds:.1f} s",
            flush=True,
        )
        for trim in (False, True):  # the frames as cut, then with `search --trim`
            searcher = Searcher(library, trim=trim)
            found = {1: [], 10: []}
            latencies = []
            for sheet, data in queries:
                t0 = time.perf_counter()
                hits = searcher.search_vector(searcher.bytes_vector(data), 10)
                latencies.append(time.perf_counter() - t0)
                sources = [
                    {p.source for p in hit.record.places}
                    | {p.source for dup in hit.duplicates for p in dup.record.places}
                    for hit in hits
                ]
                for k in found:
                    found[k].append(any(str(sheet) in s for s in sources[:k]))
            ms = np.array(latencies) * 1000
            print(
                f"  {len(queries)} cut frames{', --trim' if trim else ''}: recall@1 "
                f"{np.mean(found[1]):.3f}  recall@10 {np.mean(found[10]):.3f}  "
                f"query p50 {np.median(ms):.1f} ms",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--sheets", type=int, default=100)
    parser.add_argument("--cuts", type=int, default=3, help="frames cut from each sheet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    every = sorted((args.data / "lpc_spritesheets").rglob("*.png"))
    every = [p for p in every if Image.open(p).size == (832, 1344)]  # the standard LPC layout
    sheets = rng.sample(every, min(args.sheets, len(every)))
    queries = [(sheet, frame) for sheet in sheets for frame in cut_frames(sheet, args.cuts, rng)]
    with tempfile.TemporaryDirectory(prefix="lookalike-tiles-") as tmp:
        for tiles in (False, True):
            measure(Path(tmp) / f"lib-{tiles}", sheets, queries, tiles=tiles)


if __name__ == "__main__":
    main()
