"""The REST API under /api/v1: one module, and one router, per resource; `routers()` gives
the app them all, in the order the OpenAPI spec lists them."""

from __future__ import annotations

from fastapi import APIRouter

from ..service import LibraryService
from ..settings import ServerSettings
from . import changes, images, overview, search


def routers(service: LibraryService, settings: ServerSettings) -> list[APIRouter]:
    return [module.router(service, settings) for module in (search, images, changes, overview)]


__all__ = ["routers"]
