"""Make an evaluation set, in bench-data's format, from a freedesktop icon theme that is not in
bench-data: group = one icon name drawn at several sizes, category = its context folder
(actions, status ...), role = its size; as tango_icons, to see whether what was tuned on
tango_icons holds on icons it was never tuned on (docs/quality.md, 'Where quality stands').

    apt-get download mate-icon-theme && dpkg-deb -x mate-icon-theme_*.deb mate
    python bench/icon_theme_set.py mate/usr/share/icons/mate /tmp/mate_icons
    lookalike eval /tmp/mate_icons

Only real files (a theme links one drawing under many names), names present at every size,
and no file shared between two groups (the same bytes under two names would be relevant to
a query and not counted so).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("theme", type=Path, help="the theme folder, holding 16x16/ 22x22/ ...")
    parser.add_argument("out", type=Path, help="the set's folder (made; emptied first)")
    parser.add_argument("--sizes", default="16x16,22x22,24x24,32x32")
    args = parser.parse_args()
    sizes = args.sizes.split(",")

    drawings: dict[tuple[str, str], dict[str, Path]] = {}
    for size in sizes:
        for path in sorted((args.theme / size).glob("*/*.png")):
            if not path.is_symlink():
                drawings.setdefault((path.parent.name, path.stem), {})[size] = path
    rows, seen = [], set()
    shutil.rmtree(args.out, ignore_errors=True)
    for (context, name), by_size in sorted(drawings.items()):
        if len(by_size) < len(sizes):
            continue
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in by_size.values()}
        if digests & seen:
            continue
        seen |= digests
        for size, path in by_size.items():
            rel = Path(size) / context / path.name
            (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.out / rel)
            rows.append((rel.as_posix(), f"{context}/{name}", context, size))
    with open(args.out / "groundtruth.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "group", "category", "role"])
        writer.writerows(rows)
    print(f"{len(rows) // len(sizes)} groups, {len(rows)} images in {args.out}")


if __name__ == "__main__":
    main()
