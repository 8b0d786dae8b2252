"""REST API v1. Every error is JSON: {"detail": "what went wrong"}."""

from __future__ import annotations

import hmac
import json
import random
from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from ..catalog.records import ImageRecord, Place
from ..decode import DecodeError
from ..embed.base import TextNotSupportedError
from ..search import Filters, Hit, QueryError, QueryVector, hit_to_dict
from ..sources.http import FetchError, is_url
from ..sources.locate import ImageGone
from .service import LibraryService, WriteBusy
from .settings import ServerSettings
from .thumbnails import MEDIA_TYPE, THUMBNAIL_SIZES, cached_thumbnail

MEDIA_TYPES = {
    "PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp",
    "BMP": "image/bmp", "TIFF": "image/tiff", "ICO": "image/x-icon", "TGA": "image/x-tga",
}  # fmt: skip


class SearchOptions(BaseModel):
    k: int = Field(12, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000)
    collapse: bool = True
    verify: bool = False  # geometric verification of the best hits (slower)
    licence: str | None = None
    author: str | None = None
    site: str | None = None
    format: str | None = None
    min_width: int | None = Field(None, ge=1)
    min_height: int | None = Field(None, ge=1)

    def filters(self) -> Filters:
        return Filters(
            self.licence, self.author, self.site, self.format, self.min_width, self.min_height
        )


class SearchBody(SearchOptions):
    url: str | None = None
    id: int | None = None
    # text, or a mixed query: "2:cat + id:42 - fruit" (terms that are id:N or URLs are pictures)
    text: str | None = Field(None, max_length=2000)


class AddBody(BaseModel):
    url: str
    title: str | None = None
    author: str | None = None
    licence: str | None = None
    page_url: str | None = None
    tags: list[str] = []


def build_router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    def check_key(request: Request, expected: str | None, what: str) -> None:
        if expected is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):  # constant time
            raise HTTPException(
                401, f"{what} needs an API key (X-API-Key or Authorization: Bearer)"
            )

    def read_access(request: Request) -> None:
        check_key(request, settings.read_key, "reading")

    def write_access(request: Request) -> None:
        if settings.api_key is None:
            raise HTTPException(
                403, "writes are disabled: start the server with LOOKALIKE_API_KEY set"
            )
        check_key(request, settings.api_key, "writing")

    router = APIRouter(prefix="/api/v1")
    reads = [Depends(read_access)]
    writes = [Depends(write_access)]

    # -- helpers --------------------------------------------------------------------------------

    async def read_upload(request: Request) -> tuple[bytes, dict]:
        """The uploaded file (field "file") and the other form fields; 400 / 413 as due."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + 64 * 1024:
            raise HTTPException(413, f"upload larger than {settings.max_upload_bytes:,} bytes")
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
        try:
            raw = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"the body is not valid JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise HTTPException(422, "the JSON body must be an object")
        return parse_body(model, raw)

    def url_bytes(url: str, fetch) -> bytes:
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

    def query_from_bytes(data: bytes) -> QueryVector:
        try:
            return service.searcher().bytes_vector(data)
        except QueryError as exc:
            raise HTTPException(400, f"not an image: {exc}") from None

    # -- endpoints ------------------------------------------------------------------------------

    @router.post("/extract", dependencies=reads, summary="The vector of an uploaded image")
    async def extract(request: Request) -> dict:
        data, _ = await read_upload(request)
        vector = query_from_bytes(data).vector
        return {
            "model": service.embedder.model_id,
            "dim": int(vector.shape[0]),
            "vector": vector.tolist(),
        }

    @router.post("/search", dependencies=reads, summary="Search by upload, URL, id or text")
    async def search(request: Request) -> dict:
        if media_kind(request) == "multipart":
            data, fields = await read_upload(request)
            fields.pop("filename", None)
            text = fields.pop("text", "").strip()  # an upload plus text: a mixed query
            options = parse_body(SearchOptions, {k: v for k, v in fields.items() if v != ""})
            query = query_from_bytes(data)
            described = {"kind": "upload", "sha256": query.sha256}
            if text:
                query = query_from_text(text, base=query)
                described = {"kind": "upload+text", "sha256": described["sha256"], "text": text}
            return results_page(query, options, described)
        body = await json_body(request, SearchBody)
        if sum(x is not None for x in (body.url, body.id, body.text)) != 1:
            raise HTTPException(400, 'give exactly one of "url", "id", "text", or upload a "file"')
        if body.id is not None:
            return similar_page(body.id, body)
        if body.text is not None:
            return results_page(
                query_from_text(body.text), body, {"kind": "text", "text": body.text}
            )
        data = url_bytes(body.url, service.fetch)
        query = query_from_bytes(data)
        return results_page(query, body, {"kind": "url", "url": body.url, "sha256": query.sha256})

    def similar_page(image_id: int, options: SearchOptions) -> dict:
        try:
            query = service.searcher().id_vector(image_id)
        except QueryError:
            raise HTTPException(404, f"no indexed image with id {image_id}") from None
        return results_page(query, options, {"kind": "id", "id": image_id})

    @router.get("/images/{image_id}/similar", dependencies=reads, summary="Images like this one")
    def similar(image_id: int, options: SearchOptions = Depends()) -> dict:
        return similar_page(image_id, options)

    @router.get("/images/{image_id}", dependencies=reads, summary="An image and all its places")
    def image(image_id: int) -> dict:
        return record_json(get_record(image_id))

    @router.get("/images/{image_id}/thumbnail", dependencies=reads, response_class=Response)
    def thumbnail(image_id: int, size: int = Query(256)) -> Response:
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

    @router.get("/images/{image_id}/file", dependencies=reads, response_class=Response)
    def file(image_id: int) -> Response:
        record = get_record(image_id)
        media_type = MEDIA_TYPES.get(record.format or "", "application/octet-stream")
        return Response(original(image_id), media_type=media_type)

    @router.post("/images", dependencies=writes, status_code=201, summary="Add an image")
    async def add(request: Request, response: Response) -> dict:
        if media_kind(request) == "multipart":
            data, fields = await read_upload(request)
            meta = place_meta(fields)
            place = service.upload_place(data, fields.get("filename"), **meta)
        else:
            body = await json_body(request, AddBody)
            data = url_bytes(body.url, service.download)
            meta = place_meta(body.model_dump(exclude={"url"}))
            place = service.url_place(body.url, **meta)
        try:
            image_id, created = service.add_image(data, place)
        except DecodeError as exc:
            raise HTTPException(400, f"not an image: {exc}") from None
        except WriteBusy as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from None
        if not created:
            response.status_code = 200
        return {"id": image_id, "created": created, "image": record_json(get_record(image_id))}

    @router.delete("/images/{image_id}", dependencies=writes, status_code=204)
    def delete(image_id: int) -> Response:
        try:
            found = service.delete_image(image_id)
        except WriteBusy as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from None
        if not found:
            raise HTTPException(404, f"no image with id {image_id}")
        return Response(status_code=204)

    @router.get("/random", dependencies=reads, summary="A random indexed image, to start exploring")
    def random_image() -> dict:
        ids = service.library().catalog.vector_ids()
        if not len(ids):
            raise HTTPException(404, "the library has no images yet")
        return record_json(get_record(int(random.choice(ids))))

    @router.get("/stats", dependencies=reads)
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
