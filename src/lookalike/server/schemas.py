"""The shapes of the REST API's bodies, for validation and for the OpenAPI spec.

The routes that take an upload parse their bodies by hand (one route accepts multipart *or*
JSON), so FastAPI cannot infer their request bodies: `request_body()` describes them with
`openapi_extra`, so that /docs and API fuzzers (tests/test_api_fuzz.py) see the real thing.
The response models are documentation only (`responses=`), never used to filter output; the
fuzz test checks that every answer matches them. The functions at the end build that JSON.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field

from lookalike.catalog import Filters, ImageRecord, Place
from lookalike.search import Hit, hit_to_dict

# SQLite integers are signed 64-bit: a larger id would raise OverflowError in the driver.
MAX_ID = 2**63 - 1
MAX_DIMENSION = 1_000_000  # pixels; far above any image the decoder accepts


class SearchOptions(BaseModel):
    k: int = Field(12, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000)
    collapse: bool = True
    verify: bool = False  # find edited copies: more candidates + verification (slower)
    licence: str | None = None
    author: str | None = None
    site: str | None = None
    format: str | None = None
    min_width: int | None = Field(None, ge=1, le=MAX_DIMENSION)
    min_height: int | None = Field(None, ge=1, le=MAX_DIMENSION)

    def filters(self) -> Filters:
        return Filters(
            self.licence, self.author, self.site, self.format, self.min_width, self.min_height
        )


class SearchBody(SearchOptions):
    url: str | None = None
    id: int | None = Field(None, ge=1, le=MAX_ID)
    # text, or a mixed query: "2:cat + id:42 - fruit" (terms that are id:N or URLs are pictures)
    text: str | None = Field(None, max_length=2000)


class AddBody(BaseModel):
    url: str
    title: str | None = None
    author: str | None = None
    licence: str | None = None
    page_url: str | None = None
    tags: list[str] = []


# -- responses (documentation) --------------------------------------------------------------


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, for a person to read")


class Links(BaseModel):
    thumbnail: str
    file: str
    similar: str


class Duplicate(Links):
    id: int
    score: float
    source: str | None
    member: str
    page_url: str | None
    title: str | None
    author: str | None
    licence: str | None
    width: int | None
    height: int | None
    format: str | None
    tier: str = Field(description="exact, copy or similar")


class Result(Duplicate):
    places: int
    duplicates: list[Duplicate]
    verification: dict[str, Any] | None = None


class SearchPage(BaseModel):
    query: dict[str, Any]
    model: str
    k: int
    offset: int
    has_more: bool
    results: list[Result]


class PlaceOut(BaseModel):
    source: str
    member: str
    page_url: str | None
    title: str | None
    author: str | None
    licence: str | None
    tags: list[str]


class ImageOut(Links):
    id: int
    sha256: str
    width: int | None
    height: int | None
    format: str | None
    byte_size: int | None
    status: str
    model: str | None
    places: list[PlaceOut]


class Added(BaseModel):
    id: int
    created: bool
    image: ImageOut


class Extracted(BaseModel):
    model: str
    dim: int
    vector: list[float]


def errors(*codes: int) -> dict:
    """`responses=` entries for the error statuses a route can answer with (all JSON)."""
    reasons = {
        400: "Bad request: no file, not an image, a URL that cannot be fetched",
        401: "A key is needed (X-API-Key or Authorization: Bearer) or the one given is wrong",
        403: "Writes are disabled: the server has no API key",
        404: "No such image, or its file is gone",
        413: "The upload is larger than the server's limit",
        415: "Neither multipart/form-data nor application/json",
        422: "A parameter or body field is invalid",
        429: "Too many requests from this client; see Retry-After",
        503: "A CLI job holds the library's write lock; retry later",
    }
    return {code: {"model": ErrorBody, "description": reasons[code]} for code in codes}


# -- hand-parsed request bodies ---------------------------------------------------------------

_FILE = {"type": "string", "format": "binary", "description": "the image"}
_TEXT = {"type": "string"}
_FORM_OPTIONS = {
    "k": {"type": "integer", "minimum": 1, "maximum": 200, "default": 12},
    "offset": {"type": "integer", "minimum": 0, "maximum": 10_000, "default": 0},
    "collapse": {"type": "boolean", "default": True},
    "verify": {"type": "boolean", "default": False},
    **{name: _TEXT for name in ("licence", "author", "site", "format")},
    "min_width": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION},
    "min_height": {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION},
}
_FORM_META = {
    **{name: _TEXT for name in ("title", "author", "licence", "page_url")},
    "tags": {"type": "string", "description": "comma-separated"},
}


def _json_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def _multipart(fields: dict) -> dict:
    return {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": _FILE, **fields},
        }
    }


def request_body(kind: str) -> dict:
    """`openapi_extra` for a route whose body is read by hand: "extract", "search" or "add"."""
    content = {
        "extract": {"multipart/form-data": _multipart({})},
        "search": {
            "multipart/form-data": _multipart(
                {**_FORM_OPTIONS, "text": {**_TEXT, "description": "added to the upload"}}
            ),
            "application/json": {"schema": _json_schema(SearchBody)},
        },
        "add": {
            "multipart/form-data": _multipart(_FORM_META),
            "application/json": {"schema": _json_schema(AddBody)},
        },
    }[kind]
    return {"requestBody": {"required": True, "content": content}}


# -- the JSON the routes answer with ----------------------------------------------------------


def links(image_id: int) -> dict:
    base = f"/api/v1/images/{image_id}"
    return {"thumbnail": f"{base}/thumbnail", "file": f"{base}/file", "similar": f"{base}/similar"}


def result_json(hit: Hit) -> dict:
    out = hit_to_dict(hit)
    out["places"] = len(hit.record.places)
    out.update(links(hit.id))
    for dup, dup_hit in zip(out["duplicates"], hit.duplicates):
        dup.update(links(dup_hit.id))
    return out


def record_json(record: ImageRecord) -> dict:
    out = {
        "id": record.id,
        "sha256": record.sha256,
        "width": record.width,
        "height": record.height,
        "format": record.format,
        "byte_size": record.byte_size,
        "status": record.status,
        "model": record.model,
        "places": [place_json(p) for p in record.places],
    }
    out.update(links(record.id))
    return out


def place_json(place: Place) -> dict:
    out = asdict(place)
    out["tags"] = list(place.tags)
    return out
