"""The SQLite catalog: versioned schema, one row per content, every place kept."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from lookalike.catalog import Catalog, NewImage, Place
from lookalike.catalog.schema import SCHEMA_VERSION, SchemaError


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def test_new_catalog_is_at_the_current_schema_version(catalog):
    assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert catalog.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_catalog_from_a_newer_lookalike_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        Catalog(path)


def test_same_bytes_at_two_places_are_one_image_with_both_places(catalog):
    with catalog.transaction():
        image_id = catalog.put_image(NewImage("ab" * 32, 10, status="decoded", width=4, height=3))
        again = catalog.put_image(NewImage("ab" * 32, 10, status="decoded", width=4, height=3))
        catalog.put_place(image_id, Place("/a/one.png"), 10, 1)
        catalog.put_place(image_id, Place("/b/archive.zip", member="x/two.png", title="Two"), 10, 2)
    assert again == image_id
    record = catalog.image(image_id)
    assert [p.display for p in record.places] == ["/a/one.png", "/b/archive.zip!x/two.png"]
    assert record.places[1].title == "Two"


def test_urls_are_stored_exactly_as_given(catalog):
    url = "https://example.org/files/My Sprite (1) é.png"
    with catalog.transaction():
        image_id = catalog.put_image(NewImage("cd" * 32, 1, status="failed", error="decode: x"))
        catalog.put_place(
            image_id, Place(url, page_url="https://example.org/content/my-sprite"), None, None
        )
    assert catalog.image(image_id).places[0].source == url


def test_vectors_round_trip_at_half_precision(catalog):
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    with catalog.transaction():
        ids = [catalog.put_image(NewImage(f"{i:064x}", 1, status="decoded")) for i in range(3)]
        catalog.store_vectors(ids, vectors, "model@1")
    got_ids, got = catalog.vectors(reversed(ids))
    assert list(got_ids) == list(reversed(ids))
    assert np.allclose(got[::-1], vectors, atol=1e-2)
    assert catalog.status_counts() == {"embedded": 3}
    assert catalog.models() == {"model@1": 3}
    chunks = list(catalog.iter_vectors(batch=2))
    assert [len(c[0]) for c in chunks] == [2, 1]


def test_details_are_kept_beside_the_vectors(catalog):
    rng = np.random.default_rng(1)
    vectors, details = rng.normal(size=(3, 8)), rng.normal(size=(3, 5))
    with catalog.transaction():
        ids = [catalog.put_image(NewImage(f"{i:064x}", 1, status="decoded")) for i in range(4)]
        catalog.store_vectors(ids[:3], vectors, "model@1", details)
        catalog.store_vectors(ids[3:], vectors[:1], "model@1")  # a model without details
    having, got = catalog.details([ids[3], ids[2], ids[0]], 5)
    assert having.tolist() == [ids[2], ids[0]]  # in the order asked, less those without
    assert np.allclose(got, details[[2, 0]], atol=1e-2) and got.dtype == np.float32
    assert catalog.detail_count(5) == 3
    # storing a vector again without details drops the old ones (they were another model's)
    with catalog.transaction():
        catalog.store_vectors(ids[:1], vectors[:1], "model@2")
    assert catalog.details([ids[0]], 5)[0].tolist() == [] and catalog.detail_count(5) == 2


def test_deleting_an_image_deletes_its_places_and_vector(catalog):
    with catalog.transaction():
        image_id = catalog.put_image(NewImage("ef" * 32, 1, status="decoded"))
        catalog.put_place(image_id, Place("/x.png"), 1, 1)
        catalog.store_vectors([image_id], np.ones((1, 4), np.float32), "m@1")
        catalog.delete_images([image_id])
    assert catalog.count_places() == 0
    assert len(catalog.vector_ids()) == 0


def test_orphans_are_images_without_places(catalog):
    with catalog.transaction():
        kept = catalog.put_image(NewImage("01" * 32, 1, status="decoded"))
        orphan = catalog.put_image(NewImage("02" * 32, 1, status="decoded"))
        catalog.put_place(kept, Place("/kept.png"), 1, 1)
    assert catalog.orphan_ids() == [orphan]


def test_file_places_under_a_folder_match_whole_path_components(catalog):
    with catalog.transaction():
        image_id = catalog.put_image(NewImage("03" * 32, 1, status="decoded"))
        for path in ("/data/art/a.png", "/data/art/sub/b.png", "/data/artwork/c.png"):
            catalog.put_place(image_id, Place(path), 1, 1)
    found = sorted(source for _, source in catalog.file_places_under("/data/art"))
    assert found == ["/data/art/a.png", "/data/art/sub/b.png"]
