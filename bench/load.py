"""A bounded load test of `lookalike serve` on localhost, while an indexing job runs. By hand:

    python bench/load.py [--clients 50] [--duration 60] [--library DIR] [--data DIR]

1. Builds a library from ../shared/bench-data/tango_icons (859 icons) in a temporary folder,
   or copies the one --library names (the bench never changes yours).
2. Starts, each as its own process on 127.0.0.1: `lookalike serve --allow-private-urls` (URL
   searches must reach the local file server, which the SSRF guard refuses by default) and
   `python -m http.server` over the data folder.
3. Starts the indexing job, `lookalike index` of another set (rltiles, 2,999 tiles, one
   decoding process) on the same library: the CLI holds the library's write lock while the
   service keeps searching and picks up what the job commits.
4. Runs --clients concurrent clients (asyncio + httpx, one connection each) for --duration
   seconds (after --warmup seconds of the same load, not measured), each sending one request
   after another, chosen at random:
   upload search 40% (POST /api/v1/search, multipart), id search 40% (POST /api/v1/search,
   JSON {"id"}), URL search 20% (POST /api/v1/search, JSON {"url"} of the file server).
5. Reports requests, errors (any exception or status other than 200), p50/p99 latency per kind
   and overall, throughput, the server's RSS sampled every second (start / max / end), and
   what the indexing job added meanwhile.

Everything shares the machine's cores: the clients, the server, the file server and the job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

KINDS = {"upload": 0.4, "id": 0.4, "url": 0.2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lookalike(library: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lookalike", "-L", str(library), *args]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:4]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up in {seconds:.0f} s")


class Sampler(threading.Thread):
    """The server's RSS once a second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - started, rss_mb(self.pid)))
            self.stop.wait(1.0)


async def drive(base, files_base, files, ids, clients, duration, seed) -> tuple[dict, Counter]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = Counter()
    reasons: Counter = Counter()
    payloads = {p: p.read_bytes() for p in files}
    stop_at = time.perf_counter() + duration

    async def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
            while time.perf_counter() < stop_at:
                kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
                path = rng.choice(files)
                t0 = time.perf_counter()
                try:
                    if kind == "upload":
                        r = await http.post(
                            "/api/v1/search",
                            files={"file": (path.name, payloads[path], "image/png")},
                            data={"k": "12"},
                        )
                    elif kind == "id":
                        r = await http.post("/api/v1/search", json={"id": rng.choice(ids)})
                    else:
                        r = await http.post("/api/v1/search", json={"url": files_base[path]})
                    failure = (
                        None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:80]}"
                    )
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"[:100]
                latencies[kind].append(time.perf_counter() - t0)
                if failure:
                    errors[kind] += 1
                    reasons[failure] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - started
    rows = {}
    everything = [x for kind in KINDS for x in latencies[kind]]
    for kind, values in [*((k, latencies[k]) for k in KINDS), ("all", everything)]:
        ms = np.array(values or [np.nan]) * 1000
        rows[kind] = {
            "requests": len(values),
            "errors": sum(errors.values()) if kind == "all" else errors[kind],
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "rps": len(values) / wall,
        }
    return rows, reasons


def build_library(data: Path, target: Path) -> None:
    started = time.perf_counter()
    subprocess.run(lookalike(target, "index", "-q", str(data / "tango_icons")), check=True)
    print(f"built the library from tango_icons in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[2] / "shared" / "bench-data"
    )
    parser.add_argument("--library", type=Path, help="start from a copy of this library")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, default=15, help="seconds of load before measuring (RSS start)"
    )
    parser.add_argument("--index-set", default="rltiles", help="set the indexing job adds")
    parser.add_argument("--no-index-job", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = args.data.resolve()
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        library = Path(tmp) / "library"
        if args.library:
            shutil.copytree(args.library, library)
        else:
            build_library(data, library)

        from lookalike.library import Library

        with Library.open(library) as lib:
            ids = [int(i) for i in lib.catalog.vector_ids()]
        files = sorted((data / "tango_icons").rglob("*.png"))
        try:
            port, files_port = free_port(), free_port()
            base, files_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{files_port}"
            env = {**os.environ, "LOOKALIKE_RATE_LIMIT": "off"}
            server = subprocess.Popen(
                lookalike(library, "serve", "--port", str(port), "--allow-private-urls"), env=env
            )
            processes.append(server)
            file_server = subprocess.Popen(
                [sys.executable, "-m", "http.server", str(files_port), "--bind", "127.0.0.1",
                 "--directory", str(data)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(file_server)
            wait_until_up(base + "/healthz", server)
            wait_until_up(files_url + "/", file_server)
            files_base = {p: f"{files_url}/{p.relative_to(data).as_posix()}" for p in files}
            before = httpx.get(base + "/healthz").json()
            print(
                f"server: {before['images']} images, {before['model']}; {args.clients} clients, "
                f"{args.duration:.0f} s, mix {', '.join(f'{k} {w:.0%}' for k, w in KINDS.items())}; "
                f"{os.cpu_count()} cores shared by everything"
            )
            # warm-up at full concurrency: the model, the thread pool and its per-thread
            # connections, onnxruntime's buffers; RSS "start" is taken after it
            warm = args.warmup
            asyncio.run(drive(base, files_base, files, ids, args.clients, warm, args.seed + 99))

            job = None
            if not args.no_index_job:
                job_log = open(Path(tmp) / "index-job.log", "w")  # noqa: SIM115
                job = subprocess.Popen(
                    lookalike(library, "index", "-q", "--workers", "1", str(data / args.index_set)),
                    stdout=job_log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                processes.append(job)
                print(f"indexing job: lookalike index {args.index_set} (pid {job.pid})")
            sampler = Sampler(server.pid)
            sampler.start()
            started = time.monotonic()
            job_done: list[float] = []
            if job is not None:
                threading.Thread(
                    target=lambda: (job.wait(), job_done.append(time.monotonic() - started)),
                    daemon=True,
                ).start()
            rows, reasons = asyncio.run(
                drive(base, files_base, files, ids, args.clients, args.duration, args.seed)
            )
            sampler.stop.set()
            sampler.join()
            job_state = "no indexing job"
            if job is not None:
                code = job.poll()
                job_state = (
                    "still running at the end (stopped now)"
                    if code is None
                    else f"finished with status {code} after {(job_done or [time.monotonic() - started])[0]:.0f} s"
                )
                if code is None:
                    job.terminate()
                    job.wait(60)
            time.sleep(1.5)  # the service reconciles with the catalog at most once a second
            after = httpx.get(base + "/healthz").json()
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)

    print(
        f"\n{'kind':8s} {'requests':>8s} {'errors':>6s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s}"
    )
    for kind, r in rows.items():
        print(
            f"{kind:8s} {r['requests']:8d} {r['errors']:6d} {r['rps']:7.1f} "
            f"{r['p50']:8.1f} {r['p99']:8.1f}"
        )
    for reason, n in reasons.most_common(10):
        print(f"  error x{n}: {reason}")
    rss = [mb for _, mb in sampler.samples]
    print(
        f"\nserver RSS (MB, {len(rss)} samples, 1 s apart): start {rss[0]:.0f}, "
        f"max {max(rss):.0f}, end {rss[-1]:.0f}"
    )
    half = len(rss) // 2
    print(
        f"  max in the first half {max(rss[:half]):.0f}, in the second half {max(rss[half:]):.0f}"
    )
    step = max(1, len(rss) // 6)
    print("  over time: " + ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in sampler.samples[::step]))
    added = after["images"] - before["images"]
    print(
        f"indexing job: {job_state}; the service went from {before['images']} to "
        f"{after['images']} images in its index (+{added} vectors: "
        f"~{added * 1280 * 4 / 2**20:.0f} MB of the RSS growth is the index itself)"
    )
    sys.exit(1 if rows["all"]["errors"] else 0)


if __name__ == "__main__":
    main()
