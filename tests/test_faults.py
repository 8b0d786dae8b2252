"""Faults while indexing: kill -9 at random moments, a full disk, two writers at once."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.kill_trials import (
    LOOSE,
    ZIPPED,
    full_run_seconds,
    index_command,
    lookalike,
    make_corpus,
    one_trial,
    vector_count,
)

from .conftest import save_picture


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_kill_9_at_random_moments_leaves_a_library_that_checks_and_completes(corpus, tmp_path):
    """Five kills spread over a whole run (startup, decoding, embedding, index saves, the end);
    `python -m tests.kill_trials --trials 100` runs many more by hand."""
    library = tmp_path / "library"
    full = full_run_seconds(corpus, library)
    rng = random.Random(7)
    for slot in range(5):
        delay = full * (slot + rng.random()) / 5
        trial = one_trial(corpus, library, delay)
        assert trial.final_ok, (delay, trial)
        assert trial.check_after_kill in ("ok", "no library yet"), trial


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_decoding_workers_exit_when_the_indexer_is_killed(corpus, tmp_path):
    library = tmp_path / "library"
    proc = subprocess.Popen(index_command(library, corpus), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:  # the pool is up
        workers = [p for p in children_of(proc.pid) if "spawn_main" in _cmdline(p)]
        time.sleep(0.05)
    assert workers, "no decoding workers seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "orphaned workers outlived the indexer"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_a_second_index_job_on_the_same_library_refuses_with_a_lock_error(corpus, tmp_path):
    library = tmp_path / "library"
    first = subprocess.Popen(index_command(library, corpus), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (library / "write.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(index_command(library, corpus), capture_output=True, text=True)
    finally:
        _, first_err = first.communicate(timeout=120)
    assert second.returncode == 1
    assert f"is being written by lookalike pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, first_err
    assert vector_count(library) == LOOSE + ZIPPED  # the first job was not disturbed


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: room for a small library, not for a thousand vectors more."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_gives_a_clear_error_and_loses_nothing(small_disk, tmp_path):
    library = small_disk / "library"
    first = tmp_path / "first"
    for seed in range(12):
        save_picture(first / f"f{seed}.png", 100 + seed, size=(48, 48))
    more = tmp_path / "more"
    for seed in range(700):
        save_picture(more / f"m{seed:03d}.png", 20_000 + seed, size=(32, 32))

    subprocess.run(lookalike(library, "index", "-q", str(first)), check=True)
    full = subprocess.run(
        lookalike(library, "index", "-q", str(more)), capture_output=True, text=True
    )
    assert full.returncode == 1
    assert "error: the disk is full" in full.stderr and "Traceback" not in full.stderr

    # intact: it checks, and what was indexed before is still found
    check = subprocess.run(lookalike(library, "check", "--json"), capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["counts"]["images indexed"] >= 12
    found = subprocess.run(
        lookalike(library, "search", "--json", "-k", "1", str(first / "f3.png")),
        capture_output=True, text=True,
    )  # fmt: skip
    assert found.returncode == 0 and json.loads(found.stdout)["results"][0]["tier"] == "exact"

    # with room again, the same command finishes the job (and learns the ranking: 712 images;
    # its file is 4 MB, written beside the old one first)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    rerun = subprocess.run(lookalike(library, "index", str(more)), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    check = subprocess.run(lookalike(library, "check", "--json"), capture_output=True, text=True)
    counts = json.loads(check.stdout)["counts"]
    assert check.returncode == 0 and counts["images indexed"] == 712 == counts["in index"]
