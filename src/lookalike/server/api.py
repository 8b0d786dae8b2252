"""REST API v1. Every error is JSON: {"detail": "what went wrong"}.

The routes that read a body are `async` (to read it as it streams, under BodyLimit); what they
do with it (decode, embed, search, fetch a URL, write) blocks, so it runs in the thread pool
via `blocking()`: on the event loop it would stall every other request, a slow URL for its whole
timeout. The `def` routes run in the thread pool already.
"""

from __future__ import annotations

import hmac
import json
import random
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool as blocking

from ..catalog.records import ImageRecord
from ..decode import DecodeError
from ..embed.base import TextNotSupportedError
from ..search import QueryError, QueryVector
from ..sources.http import FetchError, is_url
from ..sources.locate import ImageGone
from .schemas import (
    MAX_ID,
    AddBody,
    Added,
    Extracted,
    ImageOut,
    SearchBody,
    SearchOptions,
    SearchPage,
    errors,
    record_json,
    request_body,
    result_json,
)
from .service import LibraryService, WriteBusy
from .settings import ServerSettings
from .thumbnails import MEDIA_TYPE, THUMBNAIL_SIZES, cached_thumbnail

MEDIA_TYPES = {
    "PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp",
    "BMP": "image/bmp", "TIFF": "image/tiff", "ICO": "image/x-icon", "TGA": "image/x-tga",
}  # fmt: skip


# Declared with FastAPI's security classes so that the OpenAPI spec lists both ways to send a
# key; auto_error=False because the answer (401 or 403, and its message) is ours to give.
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
BEARER = HTTPBearer(auto_error=False, description="the API key as a bearer token")

# A path id: SQLite integers are 64-bit, and ids start at 1 (anything else is a 422, not a
# 500 from the driver's OverflowError).
ImageId = PathParam(ge=1, le=MAX_ID, description="an image id")


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


def build_router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    def read_access(given: str = Depends(given_key)) -> None:
        check_key(given, settings.read_key, "reading")

    def write_access(given: str = Depends(given_key)) -> None:
        if settings.api_key is None:
            raise HTTPException(
                403, "writes are disabled: start the server with LOOKALIKE_API_KEY set"
            )
        check_key(given, settings.api_key, "writing")

    router = APIRouter(prefix="/api/v1")
    # Without a read key, reads take no key at all (and the spec says so).
    reads = [Depends(read_access)] if settings.read_key is not None else []
    writes = [Depends(write_access)]
    read_errors = (401, 429) if settings.read_key is not None else (429,)

    # -- helpers --------------------------------------------------------------------------------

    async def read_upload(request: Request) -> tuple[bytes, dict]:
        """The uploaded file (field "file") and the other form fields; 400 / 413 as due."""
        # The body as a whole is capped as it streams (limits.BodyLimit); here, the file.
        form = await request.form(max_files=1, max_fields=50)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, 'no file: send the image as the multipart field "file"')
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"upload larger than {settings.max_upload_bytes:,} bytes")
        if not data:
            raise HTTPException(400, "the uploaded file is empty")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        fields["filename"] = upload.filename
        return data, fields

    def media_kind(request: Request) -> str:
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

    def url_bytes(url: str, fetch) -> bytes:
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

    def parse_body(model, raw: dict):
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "body"
            raise HTTPException(422, f"{where}: {first['msg']}") from None

    def results_page(query: QueryVector, options: SearchOptions, described: dict) -> dict:
        searcher = service.searcher()
        hits = searcher.search_vector(
            query, options.k + 1, offset=options.offset, collapse=options.collapse,
            filters=options.filters(), verify=options.verify,
        )  # fmt: skip
        return {
            "query": described,
            "model": service.embedder.model_id,
            "k": options.k,
            "offset": options.offset,
            "has_more": len(hits) > options.k,
            "results": [result_json(h) for h in hits[: options.k]],
        }

    def query_from_text(text: str, base: QueryVector | None = None) -> QueryVector:
        """A text or mixed query; picture terms are id:N or URLs, never paths on the server."""
        try:
            return service.searcher().expression_vector(
                text, files=False, fetch=lambda url: url_bytes(url, service.fetch), base=base
            )
        except (TextNotSupportedError, QueryError) as exc:
            raise HTTPException(400, str(exc)) from None

    def query_from_bytes(data: bytes, *, details: bool = True) -> QueryVector:
        try:
            return service.searcher().bytes_vector(data, details=details)
        except QueryError as exc:
            raise HTTPException(400, f"not an image: {exc}") from None

    # -- endpoints ------------------------------------------------------------------------------

    @router.post(
        "/extract", dependencies=reads, summary="The vector of an uploaded image",
        openapi_extra=request_body("extract"),
        responses={200: {"model": Extracted}, **errors(400, 413, 415, 422, *read_errors)},
    )  # fmt: skip
    async def extract(request: Request) -> dict:
        data, _ = await read_upload(request)
        vector = (await blocking(query_from_bytes, data)).vector
        return {
            "model": service.embedder.model_id,
            "dim": int(vector.shape[0]),
            "vector": vector.tolist(),
        }

    @router.post(
        "/search", dependencies=reads, summary="Search by upload, URL, id or text",
        openapi_extra=request_body("search"),
        responses={200: {"model": SearchPage}, **errors(400, 404, 413, 415, 422, *read_errors)},
    )  # fmt: skip
    async def search(request: Request) -> dict:
        if media_kind(request) == "multipart":
            data, fields = await read_upload(request)
            fields.pop("filename", None)
            text = fields.pop("text", "").strip()  # an upload plus text: a mixed query
            options = parse_body(SearchOptions, {k: v for k, v in fields.items() if v != ""})
            return await blocking(upload_page, data, options, text)
        body = await json_body(request, SearchBody)
        if sum(x is not None for x in (body.url, body.id, body.text)) != 1:
            raise HTTPException(400, 'give exactly one of "url", "id", "text", or upload a "file"')
        if body.id is not None:
            return await blocking(similar_page, body.id, body)
        if body.text is not None:
            return await blocking(text_page, body)
        return await blocking(url_page, body)

    def upload_page(data: bytes, options: SearchOptions, text: str = "") -> dict:
        # details only for what ranks by them: not a verified search, nor a picture mixed with
        # text (ranked by cosine, search.QueryVector.picture)
        query = query_from_bytes(data, details=not (options.verify or text))
        described = {"kind": "upload", "sha256": query.sha256}
        if text:
            query = query_from_text(text, base=query)
            described = {"kind": "upload+text", "sha256": described["sha256"], "text": text}
        return results_page(query, options, described)

    def text_page(body: SearchBody) -> dict:
        return results_page(query_from_text(body.text), body, {"kind": "text", "text": body.text})

    def url_page(body: SearchBody) -> dict:
        query = query_from_bytes(url_bytes(body.url, service.fetch), details=not body.verify)
        return results_page(query, body, {"kind": "url", "url": body.url, "sha256": query.sha256})

    def similar_page(image_id: int, options: SearchOptions) -> dict:
        try:
            query = service.searcher().id_vector(image_id)
        except QueryError:
            raise HTTPException(404, f"no indexed image with id {image_id}") from None
        return results_page(query, options, {"kind": "id", "id": image_id})

    @router.get(
        "/images/{image_id}/similar", dependencies=reads, summary="Images like this one",
        responses={200: {"model": SearchPage}, **errors(404, 422, *read_errors)},
    )  # fmt: skip
    def similar(image_id: int = ImageId, options: SearchOptions = Depends()) -> dict:
        return similar_page(image_id, options)

    @router.get(
        "/images/{image_id}", dependencies=reads, summary="An image and all its places",
        responses={200: {"model": ImageOut}, **errors(404, 422, *read_errors)},
    )  # fmt: skip
    def image(image_id: int = ImageId) -> dict:
        return record_json(get_record(image_id))

    @router.get(
        "/images/{image_id}/thumbnail", dependencies=reads, response_class=Response,
        summary="A WebP thumbnail",
        responses={200: {"content": {MEDIA_TYPE: {}}}, **errors(404, 422, *read_errors)},
    )  # fmt: skip
    def thumbnail(
        image_id: int = ImageId,
        size: int = Query(256, description=f"one of {', '.join(map(str, THUMBNAIL_SIZES))}"),
    ) -> Response:
        if size not in THUMBNAIL_SIZES:
            raise HTTPException(422, f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}")
        record = get_record(image_id)
        try:
            data = cached_thumbnail(
                service.library().thumbnails_dir, record.sha256, size, lambda: original(image_id)
            )
        except DecodeError as exc:
            raise HTTPException(404, f"no thumbnail: {exc}") from None
        return Response(
            data, media_type=MEDIA_TYPE, headers={"Cache-Control": "public, max-age=86400"}
        )

    @router.get(
        "/images/{image_id}/file", dependencies=reads, response_class=Response,
        summary="The image's original bytes",
        responses={
            200: {"content": {t: {} for t in (*MEDIA_TYPES.values(), "application/octet-stream")}},
            **errors(404, 422, *read_errors),
        },
    )  # fmt: skip
    def file(image_id: int = ImageId) -> Response:
        record = get_record(image_id)
        media_type = MEDIA_TYPES.get(record.format or "", "application/octet-stream")
        return Response(original(image_id), media_type=media_type)

    @router.post(
        "/images", dependencies=writes, status_code=201, summary="Add an image",
        openapi_extra=request_body("add"),
        responses={
            200: {"model": Added, "description": "The bytes were known: a place was added"},
            201: {"model": Added, "description": "A new image"},
            **errors(400, 401, 403, 413, 415, 422, 429, 503),
        },
    )  # fmt: skip
    async def add(request: Request, response: Response) -> dict:
        if media_kind(request) == "multipart":
            data, fields = await read_upload(request)
            added = await blocking(add_upload, data, fields)
        else:
            added = await blocking(add_url, await json_body(request, AddBody))
        if not added["created"]:
            response.status_code = 200
        return added

    def add_upload(data: bytes, fields: dict) -> dict:
        place = service.upload_place(data, fields.get("filename"), **place_meta(fields))
        return add_image(data, place)

    def add_url(body: AddBody) -> dict:
        data = url_bytes(body.url, service.download)
        meta = place_meta(body.model_dump(exclude={"url"}))
        return add_image(data, service.url_place(body.url, **meta))

    def add_image(data: bytes, place) -> dict:
        try:
            image_id, created = service.add_image(data, place)
        except DecodeError as exc:
            raise HTTPException(400, f"not an image: {exc}") from None
        except WriteBusy as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from None
        return {"id": image_id, "created": created, "image": record_json(get_record(image_id))}

    @router.delete(
        "/images/{image_id}", dependencies=writes, status_code=204, summary="Remove an image",
        response_class=Response, responses=errors(401, 403, 404, 422, 429, 503),
    )  # fmt: skip
    def delete(image_id: int = ImageId) -> Response:
        try:
            found = service.delete_image(image_id)
        except WriteBusy as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from None
        if not found:
            raise HTTPException(404, f"no image with id {image_id}")
        return Response(status_code=204)

    @router.get(
        "/random", dependencies=reads, summary="A random indexed image, to start exploring",
        responses={200: {"model": ImageOut}, **errors(404, *read_errors)},
    )  # fmt: skip
    def random_image() -> dict:
        ids = service.library().catalog.vector_ids()
        if not len(ids):
            raise HTTPException(404, "the library has no images yet")
        return record_json(get_record(int(random.choice(ids))))

    @router.get(
        "/stats", dependencies=reads, summary="Counts, model, index, bytes on disk",
        responses=errors(*read_errors),
    )  # fmt: skip
    def stats() -> dict:
        from ..cli.catalog_cmds import library_stats

        return library_stats(service.library())

    # -- JSON shapes ----------------------------------------------------------------------------

    def get_record(image_id: int) -> ImageRecord:
        record = service.library().catalog.image(image_id)
        if record is None:
            raise HTTPException(404, f"no image with id {image_id}")
        return record

    def original(image_id: int) -> bytes:
        try:
            data = service.image_bytes(image_id)
        except ImageGone as exc:
            raise HTTPException(404, f"the image's file is no longer available: {exc}") from None
        if data is None:
            raise HTTPException(404, f"no image with id {image_id}")
        return data

    return router


def place_meta(fields: dict) -> dict:
    tags = fields.get("tags") or ()
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return {
        "title": fields.get("title") or None,
        "author": fields.get("author") or None,
        "licence": fields.get("licence") or None,
        "page_url": fields.get("page_url") or None,
        "tags": tuple(tags),
    }
