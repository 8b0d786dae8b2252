"""Kill -9 an indexing job at random moments and check what it leaves behind.

Used by tests/test_faults.py (a few trials) and run by hand for many:

    python -m tests.kill_trials --trials 100

Each trial indexes a mixed corpus (loose pictures, a zip of pictures, broken files) into a new
library with frequent index saves, kills the job after a random delay, and then requires:
`lookalike check` passes; catalog and index agree; a re-run exits 0; and at the end every
picture is indexed exactly once, the broken files are recorded as failed, and check passes.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.archive_makers import make_zip
from tests.conftest import make_picture, save_picture

LOOSE, ZIPPED, BROKEN = 100, 24, 3


def make_corpus(folder: Path) -> Path:
    for seed in range(LOOSE):
        save_picture(folder / f"d{seed // 25}" / f"p{seed:03d}.png", 5000 + seed, size=(64, 64))
    members = {}
    for seed in range(ZIPPED):
        buf = _png_bytes(6000 + seed)
        members[f"pack/z{seed:02d}.png"] = buf
    (folder / "pack.zip").write_bytes(make_zip(members))
    good = (folder / "d0" / "p000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not a picture\n")
    return folder


def _png_bytes(seed: int) -> bytes:
    import io

    buf = io.BytesIO()
    make_picture(seed, size=(64, 64)).save(buf, format="PNG")
    return buf.getvalue()


def lookalike(library: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lookalike", "-L", str(library), *args]


def index_command(library: Path, corpus: Path) -> list[str]:
    return lookalike(
        library, "index", "-q", "--batch-size", "8", "--save-every", "0.3", str(corpus)
    )


@dataclass
class Trial:
    delay: float
    vectors_at_kill: int
    check_after_kill: str  # "ok", "no library yet", or the failure
    rerun_code: int
    final_ok: bool
    problems: list[str]


def vector_count(library: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{library / 'catalog.sqlite3'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run_check(library: Path) -> tuple[int, dict]:
    done = subprocess.run(lookalike(library, "check", "--json"), capture_output=True, text=True)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, {"ok": False, "findings": [{"message": done.stderr.strip()}]}


def final_state_problems(library: Path) -> list[str]:
    from lookalike.library import Library

    problems = []
    with Library.open(library) as opened:
        counts = opened.catalog.status_counts()
        ids = opened.index.ids().tolist()
        if counts != {"indexed": LOOSE + ZIPPED, "failed": BROKEN}:
            problems.append(f"statuses {counts}")
        if len(ids) != len(set(ids)) or len(ids) != LOOSE + ZIPPED:
            problems.append(f"{len(ids)} ids in the index, {len(set(ids))} distinct")
        if set(ids) != set(opened.catalog.vector_ids().tolist()):
            problems.append("index and catalog disagree")
        if opened.catalog.count_places() != LOOSE + ZIPPED + BROKEN:
            problems.append(f"{opened.catalog.count_places()} places")
    code, report = run_check(library)
    if code != 0:
        problems.append(f"check: {report['findings']}")
    return problems


def one_trial(corpus: Path, library: Path, delay: float) -> Trial:
    shutil.rmtree(library, ignore_errors=True)
    proc = subprocess.Popen(
        index_command(library, corpus), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    vectors = vector_count(library)
    if (library / "catalog.sqlite3").exists():
        code, report = run_check(library)
        after_kill = "ok" if code == 0 else f"FAILED {report['findings']}"
    else:
        after_kill = "no library yet"
    rerun = subprocess.run(index_command(library, corpus), capture_output=True, text=True)
    problems = (
        [f"re-run exited {rerun.returncode}: {rerun.stderr[-500:]}"] if rerun.returncode else []
    )
    problems += final_state_problems(library)
    if after_kill.startswith("FAILED"):
        problems.append(f"check after kill: {after_kill}")
    return Trial(delay, vectors, after_kill, rerun.returncode, not problems, problems)


def full_run_seconds(corpus: Path, library: Path) -> float:
    shutil.rmtree(library, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(index_command(library, corpus), check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="lookalike-kill-") as tmp:
        corpus = make_corpus(Path(tmp) / "corpus")
        library = Path(tmp) / "library"
        full = full_run_seconds(corpus, library)
        print(
            f"a full run takes {full:.2f} s; killing at uniform random delays in [0, {full:.2f}] s"
        )
        failures = 0
        for n in range(args.trials):
            trial = one_trial(corpus, library, rng.uniform(0, full))
            failures += not trial.final_ok
            print(
                f"trial {n + 1:3d}: kill at {trial.delay:5.2f} s, {trial.vectors_at_kill:3d} "
                f"vectors committed, check after kill: {trial.check_after_kill}; "
                f"re-run exit {trial.rerun_code}; final {'ok' if trial.final_ok else trial.problems}",
                flush=True,
            )
        print(f"{args.trials} trials, {failures} failed")
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
