"""The library as a whole: a random image to start exploring from, and its statistics."""

from __future__ import annotations

import random

from fastapi import APIRouter, HTTPException

from lookalike.library import library_stats

from ..schemas import ImageOut, errors, record_json
from ..service import LibraryService
from ..settings import ServerSettings
from .shared import PREFIX, access, get_record


def router(service: LibraryService, settings: ServerSettings) -> APIRouter:
    """GET /random and GET /stats."""
    router = APIRouter(prefix=PREFIX)
    reads, _, read_errors = access(settings)

    @router.get(
        "/random", dependencies=reads, summary="A random indexed image, to start exploring",
        responses={200: {"model": ImageOut}, **errors(404, *read_errors)},
    )  # fmt: skip
    def random_image() -> dict:
        ids = service.library().catalog.vector_ids()
        if not len(ids):
            raise HTTPException(404, "the library has no images yet")
        return record_json(get_record(service, int(random.choice(ids))))

    @router.get(
        "/stats", dependencies=reads, summary="Counts, model, index, bytes on disk",
        responses=errors(*read_errors),
    )  # fmt: skip
    def stats() -> dict:
        return library_stats(service.library())

    return router
