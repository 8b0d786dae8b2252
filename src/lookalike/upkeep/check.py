"""`lookalike check [--repair]`: is the library consistent, and if not, put it right.

What "consistent" means follows from the order of writes (see Library.save_index and
index/stores.py): the catalog is the source of truth, and the vector store may lag behind it
by the work a crash interrupted, never the other way round.

- the catalog is a sound SQLite file (`PRAGMA quick_check`), with no dangling rows;
- every stored vector has the library's dimension, is finite and has unit length, and belongs to
  an image whose status says it has one ('embedded' or 'indexed');
- every 'indexed' image is in the saved index; the index holds no id twice, and no id the
  catalog does not know (except deletions still pending in `pending_deletes`);
  'embedded' images may or may not be there yet: the next open adds them;
- the index finds what it holds (a sample of stored vectors searched for themselves);
- the files places point at still exist (a warning: the user may have moved them);
- every searchable image has a tiny picture (index/tiny.py; a warning: `--repair` makes the
  missing ones from the originals);
- every image has sound details, when its model has them (embed/base.py; wrong-length ones are
  an error, missing or not finite ones a warning: the learned ranking weighs those images by
  their vectors alone; `--repair` drops the damaged ones and makes them again from the originals);
- images indexed before schema v9 have pixel hashes of how their pixels were stored, not of
  the colours shown (decode.pixel_hash; a warning: their re-saved copies are tiered copy, not
  exact; `--repair` hashes them again);
- a library of tuner.MIN_IMAGES or more has a sound ranking learned for its model
  (whitening.npz; a warning: search falls back to cosine similarity; `--repair` learns it).

`--repair` (upkeep/repair.py) rebuilds the index from the stored vectors (the catalog keeps every
vector), drops vectors that cannot be right and sends their images back to be embedded by the
next `index` run, removes dangling rows and left-over temporary files. A damaged catalog is not
repaired here: the report says how to recover it.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.catalog import SCHEMA_VERSION, Catalog
from lookalike.index import FaissIndex, StoreConfig, open_milvus
from lookalike.library import (
    CATALOG_FILE,
    DOWNLOADS_DIR,
    INDEX_FILE,
    LOCK_FILE,
    WHITENING_FILE,
    LibraryError,
    acquire_write_lock,
)
from lookalike.pictures import TINY_LENGTH
from lookalike.sources import is_url
from lookalike.tuning import ranking_problem

from .rules import model_detail_dim, unsound_vector_ids

SELF_SEARCH_SAMPLE = 200


@dataclass
class Finding:
    severity: str  # "error": the library is inconsistent; "warning": worth knowing
    area: str  # catalog | vectors | index | files | tiny pictures | pixel hashes | ranking
    message: str
    repairable: bool = False


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, area: str, message: str, repairable: bool = True) -> None:
        self.findings.append(Finding("error", area, message, repairable))

    def warning(self, area: str, message: str, repairable: bool = False) -> None:
        self.findings.append(Finding("warning", area, message, repairable))


def check_library(root: Path, *, repair: bool = False, files: bool = True) -> CheckReport:
    """Check the library at `root` (holding its write lock), and repair it if asked."""
    root = Path(root)
    if not (root / CATALOG_FILE).exists():
        raise LibraryError(f"no library at {root}")
    lock = acquire_write_lock(root / LOCK_FILE)  # no index job may change things under our feet
    try:
        report = CheckReport()
        _check(root, report, files=files)
    finally:
        os.close(lock)
    if repair and any(f.repairable for f in report.errors + report.findings):
        if any(f.area == "catalog" and not f.repairable for f in report.errors):
            return report  # rebuilding an index from a damaged catalog would spread the damage
        from .repair import repair_library

        report.repaired = repair_library(root)
        after = CheckReport()
        lock = acquire_write_lock(root / LOCK_FILE)
        try:
            _check(root, after, files=files)
        finally:
            os.close(lock)
        after.repaired = report.repaired
        return after
    return report


# -- checking -----------------------------------------------------------------------------------


def _check(root: Path, report: CheckReport, *, files: bool) -> None:
    try:
        # writable (we hold the lock): a kill can leave a WAL that only a writer may recover
        # (found by the kill trials); upgrade=False: no schema change without --repair
        catalog = Catalog(root / CATALOG_FILE, upgrade=False)
    except sqlite3.DatabaseError as exc:
        report.error("catalog", f"cannot open the catalog: {exc}{RECOVER_HINT}", repairable=False)
        return
    try:
        if not _check_catalog(catalog, report):
            return
        if any(not f.repairable for f in report.errors):
            return  # nothing read from a damaged catalog can be trusted
        dim = _check_vectors(catalog, report)
        _check_details(catalog, report)
        _check_index(root, catalog, dim, report)
        _check_ranking(root, catalog, report)
        if files:
            _check_files(catalog, report)
    except sqlite3.DatabaseError as exc:  # damage quick_check did not see, met while reading
        report.error("catalog", f"the catalog cannot be read: {exc}{RECOVER_HINT}", False)
    finally:
        catalog.close()


def _check_ranking(root: Path, catalog: Catalog, report: CheckReport) -> None:
    why = ranking_problem(root / WHITENING_FILE, catalog)
    if why:
        report.warning("ranking", f"{why}: search ranks by cosine similarity", repairable=True)


RECOVER_HINT = (
    "; restore catalog.sqlite3 from a backup, or salvage it with "
    "`sqlite3 catalog.sqlite3 .recover | sqlite3 recovered.sqlite3` and re-index"
)


def _check_catalog(catalog: Catalog, report: CheckReport) -> bool:
    """Check the SQLite file itself; False when there is nothing further to check."""
    problems = catalog.integrity_problems()
    if problems:
        report.error("catalog", f"SQLite integrity: {'; '.join(problems[:5])}{RECOVER_HINT}", False)
        return False
    version = catalog.schema_version()
    if version == 0:  # found by the kill trials: a kill while the library was being created
        report.warning(
            "catalog",
            "the catalog is empty: the library's creation was interrupted before anything was "
            "indexed; the next `lookalike index` sets it up",
        )
        return False
    if version < SCHEMA_VERSION:
        report.warning(
            "catalog",
            f"schema v{version}, from an older lookalike: checked no further; any write "
            f"(`lookalike check --repair`, `lookalike index`) upgrades it to v{SCHEMA_VERSION}",
            True,
        )
        return False
    dangling = catalog.dangling_rows()
    if dangling:
        tables = sorted(set(dangling))
        report.error("catalog", f"{len(dangling)} rows of {', '.join(tables)} point at no image")
    counts = catalog.status_counts()
    report.counts.update({f"images {s}": n for s, n in sorted(counts.items())})
    report.counts["places"] = catalog.count_places()
    lacking = len(catalog.ids_lacking_tiny(TINY_LENGTH))
    if lacking:
        report.warning(
            "tiny pictures",
            f"{lacking} images have no sound tiny picture (indexed before schema v6, or "
            "damaged): `search --verify` finds fewer copies of small pictures among them; "
            "`lookalike check --repair` reads them again to make theirs",
            True,
        )
    rehash = len(catalog.ids_with_stored_form_pixel_hashes())
    if rehash:
        report.warning(
            "pixel hashes",
            f"{rehash} images were hashed before schema v9, by how their pixels were stored: "
            "a copy of a palette, greyscale or transparent one saved another way is tiered "
            "copy, not exact; `lookalike check --repair` reads them again to hash them",
            True,
        )
    return True


def _check_vectors(catalog: Catalog, report: CheckReport) -> int:
    dim = catalog.dim
    total = catalog.vector_count()
    report.counts["vectors"] = total
    if total and not dim:
        report.error("vectors", "vectors are stored but the library records no dimension", False)
        return 0
    if n := len(catalog.missized_vector_ids(dim)):
        report.error("vectors", f"{n} vectors are not {dim}-dimensional")
    if n := catalog.vectorless_image_count():
        report.error("vectors", f"{n} images marked embedded or indexed have no vector")
    if n := catalog.stray_vector_count():
        report.error("vectors", f"{n} vectors belong to images marked decoded or failed")
    unsound = len(unsound_vector_ids(catalog, dim))
    if unsound:
        report.error("vectors", f"{unsound} vectors are not finite unit vectors")
    return dim


def _check_details(catalog: Catalog, report: CheckReport) -> None:
    detail_dim = model_detail_dim(catalog)
    if not detail_dim:  # a model without details, or one that cannot be loaded here
        return
    n = catalog.missized_detail_count(detail_dim)
    if n:  # search and tune read them as missing: the learned ranking uses the vector alone
        report.error("vectors", f"{n} images have details of the wrong length (damaged)")
    lacking = len(catalog.ids_lacking_details(detail_dim))
    if lacking > n:  # none (dropped by --repair, or never made), or not finite
        report.warning(
            "vectors",
            f"{lacking - n} images have no sound details: the learned ranking weighs them by "
            "their vectors alone; `lookalike check --repair` reads them again to make theirs",
            True,
        )


def _check_index(root: Path, catalog: Catalog, dim: int, report: CheckReport) -> None:
    store = StoreConfig.from_meta(catalog)
    indexed = catalog.ids_with_status("indexed")
    leftover = root / (INDEX_FILE + ".tmp")
    if leftover.exists():
        report.warning("index", f"{leftover.name} is left from an interrupted save", True)
    if store.kind == "faiss":
        path = root / INDEX_FILE
        if not path.exists():
            if len(indexed):
                report.error(
                    "index", f"{INDEX_FILE} is missing, but {len(indexed)} images are indexed"
                )
            return
        try:
            index = FaissIndex.load(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read means the same thing
            report.error("index", f"{INDEX_FILE} cannot be read: {exc}")
            return
    else:
        index = open_milvus(store, dim)  # StoreError (unreachable) goes to the user as is
    try:
        if dim and index.dim != dim:
            report.error("index", f"the index is {index.dim}-dimensional, the catalog {dim}")
            return
        ids = index.ids()
        report.counts["in index"] = len(ids)
        unique = np.unique(ids)
        if len(unique) != len(ids):
            report.error("index", f"{len(ids) - len(unique)} ids are in the index twice")
        known = np.union1d(catalog.vector_ids(), catalog.pending_deletes())
        unknown = np.setdiff1d(unique, known, assume_unique=True)
        if len(unknown):
            report.error("index", f"{len(unknown)} ids in the index are not in the catalog")
        lost = np.setdiff1d(indexed, unique, assume_unique=True)
        if len(lost):
            report.error("index", f"{len(lost)} images marked indexed are not in the index")
        waiting = np.setdiff1d(catalog.ids_with_status("embedded"), unique, assume_unique=True)
        if len(waiting):
            report.counts["waiting for the index"] = len(waiting)
        if not any(f.area == "vectors" for f in report.errors):  # else they cannot be read
            _check_self_search(catalog, index, np.intersect1d(indexed, unique), report)
    finally:
        close = getattr(index, "close", None)
        if close is not None:
            close()


def _check_self_search(catalog: Catalog, index, candidates: np.ndarray, report: CheckReport):
    """A stored vector searched for must find its own id: catches an index whose vectors or
    ids were scrambled, which id bookkeeping alone cannot see."""
    if not len(candidates):
        return
    rng = np.random.default_rng(0)
    sample = rng.choice(candidates, size=min(SELF_SEARCH_SAMPLE, len(candidates)), replace=False)
    ids, vectors = catalog.vectors(sample)
    scores, found = index.search(vectors, 10)
    # Found: its own id among the ten, or ten results as close as itself (more than ten exact
    # duplicates, e.g. the same sprite in many sheets, can push its own id out of the ten).
    own = np.einsum("ij,ij->i", vectors, vectors) - 1e-3
    hits = np.array([i in row for i, row in zip(ids.tolist(), found.tolist())])
    hits |= scores[:, -1] >= own
    hit_rate = float(np.mean(hits))
    report.counts["self-search hits %"] = round(100 * hit_rate)
    # Exact indexes find every vector (up to 10 exact duplicates); an IVF's probe may miss a few.
    floor = 0.99 if getattr(index, "is_flat", False) else 0.80
    if hit_rate < floor:
        report.error(
            "index", f"searching {len(ids)} stored vectors found only {hit_rate:.0%} of them"
        )


def _check_files(catalog: Catalog, report: CheckReport) -> None:
    missing_files = 0
    for source in catalog.place_sources():
        if not is_url(source) and not os.path.exists(source):
            missing_files += 1
    if missing_files:
        report.warning(
            "files",
            f"{missing_files} files or archives that places point at are gone (moved or "
            "deleted); `lookalike index --prune FOLDER` forgets them",
        )
    gone_downloads = sum(
        1
        for path in catalog.cached_download_paths()
        if not (catalog.path.parent / DOWNLOADS_DIR / path).exists()
    )
    if gone_downloads:
        report.warning(
            "files", f"{gone_downloads} cached downloads are gone (fetched again when needed)"
        )
