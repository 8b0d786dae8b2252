"""Interrupted indexing: kill -9 and Ctrl-C leave a library that the next run completes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lookalike.library import Library

from .conftest import save_picture

N_PICTURES = 160


@pytest.fixture(scope="module")
def many_pictures(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    for seed in range(N_PICTURES):
        save_picture(folder / f"p{seed:03d}.png", 1000 + seed, size=(64, 64))
    return folder


def start_indexing(library: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "-L",
            str(library),
            "index",
            "--batch-size",
            "8",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_vectors(library: Path, at_least: int, proc: subprocess.Popen, timeout=60.0) -> int:
    """Block until the catalog has committed `at_least` vectors (read from outside)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            conn = sqlite3.connect(f"file:{library / 'catalog.sqlite3'}?mode=ro", uri=True)
            count = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            conn.close()
            if count >= at_least:
                return count
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)
    raise AssertionError("indexing made no progress")


def assert_complete(library_path: Path) -> None:
    with Library.open(library_path) as library:
        assert library.catalog.status_counts() == {"indexed": N_PICTURES}
        assert library.catalog.count_places() == N_PICTURES
        ids = library.index.ids()
        assert len(ids) == len(set(ids.tolist())) == N_PICTURES  # nothing indexed twice
        assert set(ids.tolist()) == set(library.catalog.vector_ids().tolist())


@pytest.mark.parametrize("kill_after", [8, 48, 120])
def test_kill_9_mid_run_then_rerun_finishes_without_duplicates(tmp_path, many_pictures, kill_after):
    library = tmp_path / "lib"
    proc = start_indexing(library, many_pictures)
    wait_for_vectors(library, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # Straight after the kill the library is usable: searches see every committed vector.
    with Library.open(library) as opened:
        committed = set(opened.catalog.vector_ids().tolist())
        assert set(opened.index.ids().tolist()) == committed and len(committed) >= kill_after

    rerun = start_indexing(library, many_pictures)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"{N_PICTURES} images found" in err
    assert_complete(library)


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path, many_pictures):
    library = tmp_path / "lib"
    proc = start_indexing(library, many_pictures)
    wait_for_vectors(library, 16, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    with Library.open(library) as opened:
        counts = opened.catalog.status_counts()
        assert set(counts) == {"indexed"}  # a clean stop: everything recorded is indexed
        done = counts["indexed"]
    assert 16 <= done < N_PICTURES

    rerun = start_indexing(library, many_pictures)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"{N_PICTURES - done} added" in err
    assert_complete(library)
