"""Searching: by an uploaded image, a URL, text, or an indexed image's id; and the vector of
an uploaded image."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from lookalike.embed import TextNotSupportedError
from lookalike.search import QueryError, QueryVector

from ..schemas import (
    Extracted,
    SearchBody,
    SearchOptions,
    SearchPage,
    errors,
    request_body,
    result_json,
)
from ..service import LibraryService
from ..settings import ServerSettings
from .shared import (
    PREFIX,
    ImageId,
    access,
    blocking,
    json_body,
    media_kind,
    parse_body,
    read_upload,
    url_bytes,
)


def router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    """POST /extract, POST /search and GET /images/{id}/similar."""
    router = APIRouter(prefix=PREFIX)
    reads, _, read_errors = access(settings)

    @router.post(
        "/extract", dependencies=reads, summary="The vector of an uploaded image",
        openapi_extra=request_body("extract"),
        responses={200: {"model": Extracted}, **errors(400, 413, 415, 422, *read_errors)},
    )  # fmt: skip
    async def extract(request: Request) -> dict:
        data, _ = await read_upload(request, settings.max_upload_bytes)
        vector = (await blocking(query_from_bytes, service, data)).vector
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
            data, fields = await read_upload(request, settings.max_upload_bytes)
            fields.pop("filename", None)
            text = fields.pop("text", "").strip()  # an upload plus text: a mixed query
            options = parse_body(SearchOptions, {k: v for k, v in fields.items() if v != ""})
            return await blocking(upload_page, service, data, options, text)
        body = await json_body(request, SearchBody)
        if sum(x is not None for x in (body.url, body.id, body.text)) != 1:
            raise HTTPException(400, 'give exactly one of "url", "id", "text", or upload a "file"')
        if body.id is not None:
            return await blocking(similar_page, service, body.id, body)
        if body.text is not None:
            return await blocking(text_page, service, body)
        return await blocking(url_page, service, body)

    @router.get(
        "/images/{image_id}/similar", dependencies=reads, summary="Images like this one",
        responses={200: {"model": SearchPage}, **errors(404, 422, *read_errors)},
    )  # fmt: skip
    def similar(image_id: int = ImageId, options: SearchOptions = Depends()) -> dict:
        return similar_page(service, image_id, options)

    return router


# -- queries --------------------------------------------------------------------------------


def query_from_text(
    service: LibraryService, text: str, base: QueryVector | None = None
) -> QueryVector:
    """A text or mixed query; picture terms are id:N or URLs, never paths on the server."""
    try:
        return service.searcher().expression_vector(
            text, files=False, fetch=lambda url: url_bytes(url, service.fetch), base=base
        )
    except (TextNotSupportedError, QueryError) as exc:
        raise HTTPException(400, str(exc)) from None


def query_from_bytes(service: LibraryService, data: bytes, *, details: bool = True) -> QueryVector:
    try:
        return service.searcher().bytes_vector(data, details=details)
    except QueryError as exc:
        raise HTTPException(400, f"not an image: {exc}") from None


# -- pages of results -----------------------------------------------------------------------


def results_page(
    service: LibraryService, query: QueryVector, options: SearchOptions, described: dict
) -> dict:
    """One page of results for `query`, and whether there are more after it."""
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


def upload_page(
    service: LibraryService, data: bytes, options: SearchOptions, text: str = ""
) -> dict:
    # details only for what ranks by them: not a verified search, nor a picture mixed with
    # text (ranked by cosine, search.QueryVector.picture)
    query = query_from_bytes(service, data, details=not (options.verify or text))
    described = {"kind": "upload", "sha256": query.sha256}
    if text:
        query = query_from_text(service, text, base=query)
        described = {"kind": "upload+text", "sha256": described["sha256"], "text": text}
    return results_page(service, query, options, described)


def text_page(service: LibraryService, body: SearchBody) -> dict:
    query = query_from_text(service, body.text)
    return results_page(service, query, body, {"kind": "text", "text": body.text})


def url_page(service: LibraryService, body: SearchBody) -> dict:
    data = url_bytes(body.url, service.fetch)
    query = query_from_bytes(service, data, details=not body.verify)
    return results_page(
        service, query, body, {"kind": "url", "url": body.url, "sha256": query.sha256}
    )


def similar_page(service: LibraryService, image_id: int, options: SearchOptions) -> dict:
    try:
        query = service.searcher().id_vector(image_id)
    except QueryError:
        raise HTTPException(404, f"no indexed image with id {image_id}") from None
    return results_page(service, query, options, {"kind": "id", "id": image_id})
