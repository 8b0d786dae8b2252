"""Fuzzing the REST API from its own OpenAPI spec with schemathesis.

Every operation in the spec gets generated requests, valid and invalid (positive and negative
modes), sent to the ASGI app over a small library. Each answer must not be a 5xx, must have a
status code and content type the spec lists, and a body that matches the documented schema.
Uploads are random bytes by default; half of the cases get a real PNG instead, so that the
decode -> embed -> search path is fuzzed too, not only the "not an image" answer.

Bounded (a fixed number of examples per operation, derandomized) so it runs in CI in seconds,
and gives the same cases on every run.
"""

from __future__ import annotations

import io
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lookalike.ingest import index_paths
from lookalike.library import Library
from lookalike.server import ServerSettings, create_app

from .conftest import make_picture, save_picture

KEY = "fuzz-key"


def tiny_png(seed: int) -> bytes:
    buf = io.BytesIO()
    make_picture(seed, size=(40, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for seed in range(6):
        save_picture(root / "pictures" / f"p{seed}.png", seed, size=(40, 40))
    with Library.open(root / "library", write=True) as library:
        index_paths(library, [root / "pictures"], progress=False)
    return create_app(root / "library", ServerSettings(api_key=KEY, max_upload_bytes=100_000))


# Every operation of the spec, listed so that each is its own test (and a route added without
# being listed here fails test_every_operation_is_fuzzed).
OPERATIONS = [
    "POST /api/v1/extract",
    "POST /api/v1/search",
    "GET /api/v1/images/{image_id}/similar",
    "GET /api/v1/images/{image_id}",
    "GET /api/v1/images/{image_id}/thumbnail",
    "GET /api/v1/images/{image_id}/file",
    "POST /api/v1/images",
    "DELETE /api/v1/images/{image_id}",
    "GET /api/v1/random",
    "GET /api/v1/stats",
]
# Operations whose valid cases must succeed at least once (the others need an existing id,
# which random ids seldom are).
REACH_SUCCESS = {
    "POST /api/v1/extract", "POST /api/v1/search", "POST /api/v1/images",
    "GET /api/v1/random", "GET /api/v1/stats",
}  # fmt: skip
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def test_every_operation_is_fuzzed(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


# schemathesis' own @schema.parametrize() needs a pytest internal that pytest 9 removed, so the
# cases are drawn with plain Hypothesis from each operation's strategy.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_api_conforms_to_its_spec_and_never_fails(api_schema, label, mode):
    operation = api_schema.find_operation_by_label(label)
    if mode == GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters):
        if not operation.query:
            pytest.skip("no parameters or body to make invalid")

    @given(case=operation.as_strategy(mode), real_image=st.booleans())
    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", 100)),
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case, real_image):
        if real_image and isinstance(case.body, dict) and "file" in case.body:
            case.body["file"] = tiny_png(len(case.body))  # reach decode -> embed -> search too
        response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
        statuses.add(response.status_code)

    statuses: set[int] = set()
    fuzz()
    if mode == GenerationMode.POSITIVE and label in REACH_SUCCESS:
        # the fuzzer got past validation to the real work, not only to 4xx answers
        assert any(200 <= s < 300 for s in statuses), statuses


def test_the_spec_describes_the_hand_parsed_bodies(fuzz_app):
    """Without these descriptions the fuzzer would never send a body to these routes."""
    from fastapi.testclient import TestClient

    with TestClient(fuzz_app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    search = paths["/api/v1/search"]["post"]["requestBody"]["content"]
    assert search["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert {"url", "id", "k"} <= set(search["application/json"]["schema"]["properties"])
    add = paths["/api/v1/images"]["post"]["requestBody"]["content"]
    assert set(add) == {"multipart/form-data", "application/json"}
    assert "multipart/form-data" in paths["/api/v1/extract"]["post"]["requestBody"]["content"]
    image = paths["/api/v1/images/{image_id}"]["get"]
    assert image["responses"]["404"]["content"]["application/json"]["schema"]
