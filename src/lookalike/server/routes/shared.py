"""What the API's routes share: API keys, reading request bodies, and the errors they map to.

The routes that read a body are `async` (to read it as it streams, under BodyLimit); what they
do with it (decode, embed, search, fetch a URL, write) blocks, so it runs in the thread pool
via `blocking()`: on the event loop it would stall every other request, a slow URL for its whole
timeout. The `def` routes run in the thread pool already.
"""

from __future__ import annotations

import hmac
import json
from typing import NamedTuple
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool as blocking

from lookalike.catalog import ImageRecord
from lookalike.sources import FetchError, is_url

from ..schemas import MAX_ID
from ..service import LibraryService, WriteBusy
from ..settings import ServerSettings

__all__ = ["blocking"]

PREFIX = "/api/v1"

# Declared with FastAPI's security classes so that the OpenAPI spec lists both ways to send a
# key; auto_error=False because the answer (401 or 403, and its message) is ours to give.
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
BEARER = HTTPBearer(auto_error=False, description="the API key as a bearer token")

# A path id: SQLite integers are 64-bit, and ids start at 1 (anything else is a 422, not a
# 500 from the driver's OverflowError).
ImageId = PathParam(ge=1, le=MAX_ID, description="an image id")


# -- API keys -------------------------------------------------------------------------------


class Access(NamedTuple):
    """The dependencies that guard reads and writes, and the errors reads may answer."""

    reads: list
    writes: list
    read_errors: tuple[int, ...]


def given_key(
    key: str | None = Security(KEY_HEADER),
    bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
) -> str:
    if key:
        return key
    return bearer.credentials.strip() if bearer is not None else ""


def check_key(given: str, expected: str, what: str) -> None:
    # hmac.compare_digest: the time taken does not depend on how much of the key was right
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, f"{what} needs an API key (X-API-Key or Authorization: Bearer)")


def access(settings: ServerSettings) -> Access:
    """The key checks that `settings` ask for, as route dependencies."""

    def read_access(given: str = Depends(given_key)) -> None:
        check_key(given, settings.read_key, "reading")

    def write_access(given: str = Depends(given_key)) -> None:
        if settings.api_key is None:
            raise HTTPException(
                403, "writes are disabled: start the server with LOOKALIKE_API_KEY set"
            )
        check_key(given, settings.api_key, "writing")

    # Without a read key, reads take no key at all (and the spec says so).
    if settings.read_key is None:
        return Access([], [Depends(write_access)], (429,))
    return Access([Depends(read_access)], [Depends(write_access)], (401, 429))


# -- request bodies -------------------------------------------------------------------------


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, dict]:
    """The uploaded file (field "file") and the other form fields; 400 / 413 as due."""
    # The body as a whole is capped as it streams (limits.BodyLimit); here, the file.
    form = await request.form(max_files=1, max_fields=50)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, 'no file: send the image as the multipart field "file"')
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"upload larger than {max_bytes:,} bytes")
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    fields["filename"] = upload.filename
    return data, fields


def media_kind(request: Request) -> str:
    """ "multipart" or "json", from the Content-Type (none means JSON); 415 for anything else."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return "multipart"
    if ctype in ("application/json", ""):
        return "json"
    raise HTTPException(
        415, f"send multipart/form-data (an image) or application/json, not {ctype}"
    )


async def json_body(request: Request, model):
    """The JSON body, parsed and validated into `model` (400 / 422 with the reason)."""
    body = await request.body() or b"{}"
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:  # json.loads(bytes) decodes first (UTF-8, -16 or -32)
        raise HTTPException(400, "the body is not valid JSON: not UTF-8 text") from None
    except RecursionError:  # thousands of nested brackets
        raise HTTPException(400, "the body is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise HTTPException(422, "the JSON body must be an object")
    return parse_body(model, raw)


def parse_body(model, raw: dict):
    """`raw` validated into `model`; the first problem is a 422."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}") from None


def url_bytes(url: str, fetch) -> bytes:
    """The bytes at `url`, got with `fetch`; a bad URL or a failed fetch is a 400."""
    try:  # urlsplit and .port raise ValueError ("http://[", port 99999) deep in the fetch
        _ = urlsplit(url).port
    except ValueError as exc:
        raise HTTPException(400, f"url is not a valid URL: {exc}") from None
    if not is_url(url):
        raise HTTPException(400, "url must be an http(s) URL")
    try:
        return fetch(url)
    except FetchError as exc:
        raise HTTPException(400, f"cannot fetch the URL: {exc}") from None


# -- errors ---------------------------------------------------------------------------------


def get_record(service: LibraryService, image_id: int) -> ImageRecord:
    """The image's record; 404 if there is none."""
    record = service.library().catalog.image(image_id)
    if record is None:
        raise HTTPException(404, f"no image with id {image_id}")
    return record


def busy(exc: WriteBusy) -> HTTPException:
    """A 503 for a write that found another under way: the client may try again shortly."""
    return HTTPException(503, str(exc), headers={"Retry-After": "10"})
