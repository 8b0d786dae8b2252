"""Throughput and latency of `lookalike serve` at ~10k images. Run by hand:

    python bench/serve.py [--library DIR] [--seconds 20] [--clients 1,4,8]

Builds a library of ../shared/bench-data's icons, tiles, sprite sheets and flags plus flipped
copies of the icons and tiles (~12.5k images) unless --library names one, starts
`lookalike serve` as its own process on 127.0.0.1, and drives it with concurrent clients
(threads, one httpx client each) for a fixed time per scenario:

- upload search: POST /api/v1/search with a random bench image (decode + embed + search);
- id search: GET /api/v1/images/{id}/similar for a random indexed id (search only).

Reports requests/s, p50 and p99 latency, and errors, per scenario and client count.
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ingest import SETS, make_flipped  # noqa: E402

from lookalike.ingest import index_paths  # noqa: E402
from lookalike.library import Library  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_library(data: Path, root: Path) -> Path:
    library = root / "library"
    flipped = make_flipped(data, root / "flipped")
    started = time.perf_counter()
    with Library.open(library, write=True) as lib:
        report = index_paths(lib, [*(data / s for s in SETS), flipped], progress=False)
    print(f"built {report.added} images in {time.perf_counter() - started:.0f} s")
    return library


def drive(base: str, scenario: str, clients: int, seconds: float, files, ids) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    if scenario == "upload":
                        path = rng.choice(files)
                        r = http.post("/api/v1/search", files={"file": (path.name, path.read_bytes())},
                                      data={"k": "12"})  # fmt: skip
                    else:
                        r = http.get(f"/api/v1/images/{rng.choice(ids)}/similar", params={"k": 12})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    errors += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench-data"))
    parser.add_argument("--library", type=Path)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", default="1,4,8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lookalike-serve-") as tmp:
        library = args.library or build_library(args.data, Path(tmp))
        with Library.open(library) as lib:
            ids = lib.catalog.vector_ids().tolist()
        files = [
            p
            for s in SETS
            for p in (args.data / s).rglob("*")
            if p.suffix.lower() in (".png", ".bmp")
        ]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "-L", str(library), "serve", "--port", str(port)],
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(base + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            health = httpx.get(base + "/healthz").json()
            print(
                f"server: {health['images']} images, {health['model']}, 2 cores shared with the clients"
            )
            drive(base, "upload", 2, 3, files, ids)  # warm-up
            print(
                f"{'scenario':10s} {'clients':>7s} {'requests':>8s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}"
            )
            for scenario in ("upload", "id"):
                for clients in map(int, args.clients.split(",")):
                    r = drive(base, scenario, clients, args.seconds, files, ids)
                    print(
                        f"{scenario:10s} {clients:7d} {r['requests']:8d} {r['rps']:7.1f} "
                        f"{r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:6d}",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
