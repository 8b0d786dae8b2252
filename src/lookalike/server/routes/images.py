"""Reading one image: its record with all its places, a thumbnail, and its original bytes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response

from lookalike.pictures import DecodeError
from lookalike.sources import ImageGone

from ..schemas import ImageOut, errors, record_json
from ..service import LibraryService
from ..settings import ServerSettings
from ..thumbnails import MEDIA_TYPE, THUMBNAIL_SIZES, cached_thumbnail
from .shared import PREFIX, ImageId, access, get_record

MEDIA_TYPES = {
    "PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp",
    "BMP": "image/bmp", "TIFF": "image/tiff", "ICO": "image/x-icon", "TGA": "image/x-tga",
}  # fmt: skip


def router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    """GET /images/{id}, /images/{id}/thumbnail and /images/{id}/file."""
    router = APIRouter(prefix=PREFIX)
    reads, _, read_errors = access(settings)

    @router.get(
        "/images/{image_id}", dependencies=reads, summary="An image and all its places",
        responses={200: {"model": ImageOut}, **errors(404, 422, *read_errors)},
    )  # fmt: skip
    def image(image_id: int = ImageId) -> dict:
        return record_json(get_record(service, image_id))

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
        record = get_record(service, image_id)
        try:
            data = cached_thumbnail(
                service.library().thumbnails_dir,
                record.sha256,
                size,
                lambda: original(service, image_id),
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
        record = get_record(service, image_id)
        media_type = MEDIA_TYPES.get(record.format or "", "application/octet-stream")
        return Response(original(service, image_id), media_type=media_type)

    return router


def original(service: LibraryService, image_id: int) -> bytes:
    """The image's original bytes; 404 if there is no such image, or its file has gone."""
    try:
        data = service.image_bytes(image_id)
    except ImageGone as exc:
        raise HTTPException(404, f"the image's file is no longer available: {exc}") from None
    if data is None:
        raise HTTPException(404, f"no image with id {image_id}")
    return data
