"""The Milvus store, against a real engine: Milvus Lite (one file), no mocks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("milvus_lite")

from lookalike.catalog import Filters, NewImage, Place
from lookalike.index import StoreConfig  # noqa: E402
from lookalike.ingest import Indexer  # noqa: E402
from lookalike.library import Library  # noqa: E402
from lookalike.search import Searcher  # noqa: E402
from lookalike.sources import (
    FileItem,  # noqa: E402
    Source,  # noqa: E402
)

from .conftest import save_picture  # noqa: E402


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "vectors.db")


def milvus_ids(library: Library) -> set[int]:
    return set(library.index.ids().tolist())


def test_index_and_search_with_milvus_lite(run_cli, picture_folder, library_path, store):
    code, _, err = run_cli("--store", store, "index", picture_folder)
    assert code == 0, err
    code, out, _ = run_cli("search", "--json", "-k", "2", picture_folder / "pic05.png")
    top = json.loads(out)["results"][0]
    assert top["source"].endswith("pic05.png") and top["tier"] == "exact"
    code, out, _ = run_cli("stats", "--json")
    stats = json.loads(out)
    assert stats["store"]["kind"] == "milvus" and stats["index"]["vectors"] == 12
    assert stats["status"]["indexed"] == 12
    # the store is remembered: no --store needed, and another one is refused
    code, _, err = run_cli("--store", "faiss", "search", picture_folder / "pic05.png")
    assert code == 1 and "lookalike migrate" in err


class _Tagged(Source):
    description = "tagged pictures"

    def __init__(self, folder, licences):
        self.folder, self.licences = folder, licences

    def items(self):
        for n, licence in enumerate(self.licences):
            path = save_picture(self.folder / f"t{n}.png", 700 + n, size=(64 + 8 * n, 64))
            yield FileItem(Place(str(path), licence=licence, page_url=f"https://art.example/{n}"),
                           path.stat().st_size, path.stat().st_mtime_ns, path=str(path))  # fmt: skip


def test_filters_push_down_to_milvus(tmp_path, library_path, store):
    licences = ["CC0", "CC-BY 3.0", "CC0", "GPL 2.0", "CC0", "OGA-BY 3.0"]
    with Library.open(library_path, write=True, store=StoreConfig.parse(store)) as library:
        Indexer(library, progress=False).run([_Tagged(tmp_path / "art", licences)])
        searcher = Searcher(library)
        query = searcher.id_vector(1)
        assert library.index.filters_pushdown
        cc0 = searcher.search_vector(query, 10, filters=Filters(licence="cc0"), collapse=False)
        assert {h.record.places[0].licence for h in cc0} == {"CC0"} and len(cc0) == 2
        wide = searcher.search_vector(query, 10, filters=Filters(min_width=90), collapse=False)
        assert sorted(h.record.width for h in wide) == [96, 104]
        site = searcher.search_vector(
            query, 10, filters=Filters(site="art.example"), collapse=False
        )
        assert len(site) == 5
        assert searcher.search_vector(query, 10, filters=Filters(site="elsewhere")) == []


def test_a_crash_between_catalog_and_milvus_is_replayed(
    tmp_path, library_path, store, picture_folder
):
    config = StoreConfig.parse(store)
    with Library.open(library_path, write=True, store=config) as library:
        Indexer(library, progress=False).run([_Tagged(tmp_path / "art", ["CC0"] * 3)])
        assert milvus_ids(library) == {1, 2, 3}
        # 1. committed to the catalog, then "crashed" before Milvus heard of it
        with library.catalog.transaction():
            new = library.catalog.put_image(
                NewImage("f" * 64, 10, status="decoded", width=8, height=8)
            )
            library.catalog.put_place(new, Place("/x/new.png"), 10, 1)
            library.catalog.store_vectors([new], np.ones((1, 1280), np.float32) / 1280**0.5, "m@1")
        # 2. deleted from the catalog, then "crashed" before Milvus deleted it
        with library.catalog.transaction():
            library.catalog.delete_images([2])
        assert milvus_ids(library) == {1, 2, 3}
    with Library.open(library_path, write=True) as library:  # the replay happens on open
        assert milvus_ids(library) == {1, 3, new}
        assert library.catalog.status_counts() == {"indexed": 3}
        assert len(library.catalog.pending_deletes()) == 0


def test_kill_9_while_indexing_into_milvus(tmp_path, library_path, store):
    folder = tmp_path / "many"
    for seed in range(120):
        save_picture(folder / f"p{seed:03d}.png", 3000 + seed, size=(48, 48))
    args = [sys.executable, "-m", "lookalike", "-L", str(library_path), "--store", store,
            "index", "--batch-size", "8", str(folder)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import sqlite3

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(f"file:{library_path / 'catalog.sqlite3'}?mode=ro", uri=True)
            done = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            conn.close()
            if done >= 40:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    with Library.open(library_path) as library:
        assert library.catalog.status_counts() == {"indexed": 120}
        assert milvus_ids(library) == set(library.catalog.vector_ids().tolist())


def test_migrate_to_milvus_and_back_keeps_every_vector(
    run_cli, picture_folder, library_path, store
):
    run_cli("index", picture_folder)

    def results():
        code, out, _ = run_cli(
            "search", "--json", "-k", "5", "--no-collapse", picture_folder / "pic03.png"
        )
        assert code == 0
        return [(h["id"], round(h["score"], 3)) for h in json.loads(out)["results"]]

    before = results()
    code, _, err = run_cli(
        "migrate", "--to", store, "--milvus-index", "IVF_FLAT", "--milvus-params", '{"nlist": 4}'
    )
    assert code == 0 and "moved 12 vectors" in err
    with Library.open(library_path) as library:
        assert library.store.kind == "milvus" and "IVF_FLAT" in library.index.kind
    assert results() == before
    code, _, err = run_cli("migrate", "--to", "faiss")
    assert code == 0 and "moved 12 vectors" in err
    assert results() == before
    code, _, err = run_cli("migrate", "--to", "faiss")
    assert code == 2 and "already keeps its vectors in faiss" in err


def test_a_busy_milvus_lite_file_gives_a_clear_error(run_cli, picture_folder, store, library_path):
    run_cli("--store", store, "index", picture_folder)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; import time; "
         f"MilvusClient({store!r}); print('open', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        code, _, err = run_cli("search", picture_folder / "pic01.png")
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and "one process at a time" in err


def test_unknown_stores_are_refused(run_cli, picture_folder):
    code, _, err = run_cli("--store", "redis://localhost", "index", picture_folder)
    assert code == 2 and "unknown store" in err
    with pytest.raises(ValueError):
        StoreConfig.parse("milvus://h:1", index_type="BTREE")


@pytest.mark.parametrize("metric", ["L2", "COSINE"])
def test_other_metrics_rank_alike_and_score_as_cosine(
    run_cli, picture_folder, library_path, tmp_path, metric
):
    """The same library on FAISS (inner product) and on Milvus with `metric`: same ids, same
    scores (L2's squared distances are turned back into cosine similarity)."""

    def results(*options):
        code, out, err = run_cli(
            *options, "search", "--json", "-k", "5", "--no-collapse", picture_folder / "pic03.png"
        )
        assert code == 0, err
        return [(h["id"], round(h["score"], 3)) for h in json.loads(out)["results"]]

    run_cli("index", picture_folder)
    before = results()
    store = str(tmp_path / f"{metric}.db")
    code, _, err = run_cli("migrate", "--to", store, "--milvus-metric", metric)
    assert code == 0, err
    with Library.open(library_path) as library:
        assert library.store.metric == metric and metric in library.index.kind
    after = results()
    assert [i for i, _ in after] == [i for i, _ in before]
    assert np.allclose([s for _, s in after], [s for _, s in before], atol=0.002)


def test_check_and_repair_a_milvus_library(run_cli, picture_folder, library_path, store):
    run_cli("--store", store, "index", picture_folder)
    code, out, _ = run_cli("check", "--json")
    assert code == 0 and json.loads(out)["counts"]["in index"] == 12
    with Library.open(library_path) as library:
        library.index.remove(np.array([3, 4]))  # lost by Milvus behind the catalog's back
        library.index.save()
        library.close()
    code, out, _ = run_cli("check", "--json")
    report = json.loads(out)
    assert code == 1
    assert any("2 images marked indexed" in f["message"] for f in report["findings"])
    code, out, _ = run_cli("check", "--repair", "--json")
    assert code == 0 and json.loads(out)["counts"]["in index"] == 12
