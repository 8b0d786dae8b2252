"""One indexing run over a corpus of hostile and broken files (tests/hostile_files.py): each
gets a clear per-file error (or is read safely), the run goes on, memory stays bounded, nothing
is fetched on a file's behalf, and what the library held before is intact."""

from __future__ import annotations

import http.server
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.hostile_files import EXPECTED, build_corpus

from .conftest import save_picture

MAX_RSS_BYTES = 1 << 30  # a bomb decoded would take 1.2 GB in one process


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Index 8 good pictures, then the hostile corpus into the same library (in a child
    process whose peak memory, workers included, is measured)."""
    root = tmp_path_factory.mktemp("hostile")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    xxe_url = f"http://127.0.0.1:{server.server_address[1]}/xxe"
    good = root / "good"
    for seed in range(8):
        save_picture(good / f"g{seed}.png", 300 + seed)
    library = root / "library"
    cli = [sys.executable, "-m", "lookalike", "-L", str(library)]
    subprocess.run([*cli, "index", "-q", str(good)], check=True)
    corpus = build_corpus(root / "corpus", xxe_url)
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", measure, *cli, "index", str(corpus)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    code, peak = map(int, run.stdout.split())
    server.shutdown()
    return {
        "code": code,
        "stderr": run.stderr,
        "peak": peak,
        "library": library,
        "cli": cli,
        "good": good,
        "hits": list(_CountingHandler.hits),
    }


def export_rows(outcome) -> list[dict]:
    done = subprocess.run(
        [*outcome["cli"], "export", "--format", "jsonl"], capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def containers(outcome) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(outcome["library"] / "catalog.sqlite3")
    rows = conn.execute("SELECT source, status, error FROM containers").fetchall()
    conn.close()
    return {Path(source).name: (status, error or "") for source, status, error in rows}


def test_the_run_goes_on_and_exits_cleanly(outcome):
    assert outcome["code"] == 0, outcome["stderr"]
    assert "Traceback" not in outcome["stderr"]


def test_each_loose_file_gets_its_outcome_in_the_catalog(outcome):
    by_name = {Path(r["source"]).name: r for r in export_rows(outcome) if not r["member"]}
    for name, (status, error) in EXPECTED.items():
        if name.endswith(".zip"):
            continue
        row = by_name.get(name)
        assert row is not None, f"{name!r} not in the catalog"
        assert row["status"] == status, (name, row)
        if error:
            assert error in row["error"], (name, row["error"])
    assert by_name["anim-10k.gif"]["format"] == "GIF"
    assert by_name["jpeg-named.png"]["format"] == "JPEG"


def test_archive_bombs_traversal_links_and_encryption_are_refused(outcome):
    read = containers(outcome)
    assert (
        read["ratio-bomb.zip"][0] == "failed"
        and "decompresses more than" in read["ratio-bomb.zip"][1]
    )
    assert read["nested-bomb.zip"][0] == "failed"
    assert "path traversal" in read["traversal.zip"][1] and "absolute" in read["traversal.zip"][1]
    links = read["links.tar"][1]
    assert "sym.png" in links and "hard.png" in links and "absolute" in links
    assert "device.png: not a regular file" in links and "fifo.png: not a regular file" in links
    assert "up.png" in read["linked.tar.gz"][1]
    assert "encrypted" in read["encrypted.zip"][1]
    members = {(Path(r["source"]).name, r["member"]) for r in export_rows(outcome) if r["member"]}
    # only the harmless members were read (a bomb's members before the bomb included: reading
    # stops at the limit, not before); nothing was written outside the library
    assert members == {
        ("ok-inside.zip", "inside.png"),
        ("links.tar", "fine.png"),
        ("ratio-bomb.zip", "ok.png"),
        ("nested-bomb.zip", "a.png"),
    }
    assert not (outcome["library"].parent / "escape.png").exists()


def test_svg_is_not_read_and_its_external_entity_is_never_fetched(outcome):
    names = {Path(r["source"]).name for r in export_rows(outcome)}
    assert "external-entity.svg" not in names  # not a format lookalike reads
    assert outcome["hits"] == []


def test_memory_stays_bounded(outcome):
    assert outcome["peak"] < MAX_RSS_BYTES, f"peak RSS {outcome['peak'] / 2**20:.0f} MiB"


def test_what_was_indexed_before_is_intact_and_the_library_checks(outcome):
    done = subprocess.run([*outcome["cli"], "check", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for seed in (0, 7):
        found = subprocess.run(
            [*outcome["cli"], "search", "--json", "-k", "1", str(outcome["good"] / f"g{seed}.png")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(found.stdout)["results"][0]["tier"] == "exact"
