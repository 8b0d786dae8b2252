"""Changing the library: adding an image (an upload or a URL) and removing one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from lookalike.pictures import DecodeError

from ..schemas import AddBody, Added, errors, record_json, request_body
from ..service import LibraryService, WriteBusy
from ..settings import ServerSettings
from .shared import (
    PREFIX,
    ImageId,
    access,
    blocking,
    busy,
    get_record,
    json_body,
    media_kind,
    read_upload,
    url_bytes,
)


def router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    """POST /images and DELETE /images/{id}; both need the API key."""
    router = APIRouter(prefix=PREFIX)
    writes = access(settings).writes

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
            data, fields = await read_upload(request, settings.max_upload_bytes)
            added = await blocking(add_upload, service, data, fields)
        else:
            added = await blocking(add_url, service, await json_body(request, AddBody))
        if not added["created"]:
            response.status_code = 200
        return added

    @router.delete(
        "/images/{image_id}", dependencies=writes, status_code=204, summary="Remove an image",
        response_class=Response, responses=errors(401, 403, 404, 422, 429, 503),
    )  # fmt: skip
    def delete(image_id: int = ImageId) -> Response:
        try:
            found = service.delete_image(image_id)
        except WriteBusy as exc:
            raise busy(exc) from None
        if not found:
            raise HTTPException(404, f"no image with id {image_id}")
        return Response(status_code=204)

    return router


def add_upload(service: LibraryService, data: bytes, fields: dict) -> dict:
    place = service.upload_place(data, fields.get("filename"), **place_meta(fields))
    return add_image(service, data, place)


def add_url(service: LibraryService, body: AddBody) -> dict:
    data = url_bytes(body.url, service.download)
    meta = place_meta(body.model_dump(exclude={"url"}))
    return add_image(service, data, service.url_place(body.url, **meta))


def add_image(service: LibraryService, data: bytes, place) -> dict:
    """Adds the image (or, for known bytes, its place); the answer POST /images gives."""
    try:
        image_id, created = service.add_image(data, place)
    except DecodeError as exc:
        raise HTTPException(400, f"not an image: {exc}") from None
    except WriteBusy as exc:
        raise busy(exc) from None
    return {"id": image_id, "created": created, "image": record_json(get_record(service, image_id))}


def place_meta(fields: dict) -> dict:
    """A place's title, author, licence, page and tags, from form fields or a JSON body."""
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
