"""Retrieval metrics used by the benchmarks, checked on rankings worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.evaluation.metrics import leave_one_out, read_groundtruth, score_rankings


def test_average_precision_by_hand():
    # relevant at ranks 1 and 3, 2 relevant in the gallery: AP = (1/1 + 2/3) / 2
    s = score_rankings([["a", "b", "a", "c"]], ["a"], [2], k=4)
    assert s.map_at_k == pytest.approx((1 + 2 / 3) / 2)
    assert s.recall_at_1 == 1.0 and s.precision_at_k == pytest.approx(2 / 4)
    # nothing relevant retrieved
    s = score_rankings([["b", "c"]], ["a"], [3], k=2)
    assert s.map_at_k == 0.0 and s.recall_at_k == 0.0


def test_ap_is_normalised_by_what_fits_in_k():
    # 50 relevant images but k=2: two hits in two slots is perfect
    assert score_rankings([["a", "a"]], ["a"], [50], k=2).map_at_k == 1.0


def test_leave_one_out_excludes_the_query_and_unlabelled_images():
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99], [0.7, 0.7]], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = ["x", "x", "y", "y", ""]
    s = leave_one_out(vectors, labels, k=1)
    assert s.queries == 4  # the unlabelled image is never a query
    assert s.map_at_k == 1.0 and s.recall_at_1 == 1.0


def test_read_groundtruth(tmp_path):
    (tmp_path / "groundtruth.csv").write_text(
        "path,group,category,role\na.png,g1,animals,16x16\nb.png,,animals,\n"
    )
    rows = read_groundtruth(tmp_path)
    assert [(r.path, r.group, r.category, r.role) for r in rows] == [
        ("a.png", "g1", "animals", "16x16"),
        ("b.png", "", "animals", ""),
    ]
