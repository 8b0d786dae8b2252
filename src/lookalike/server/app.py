"""The FastAPI application: the REST API under /api/v1, the web page at /, health at /healthz."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lookalike import __version__

from .limits import BodyLimit, RateLimiter, parse_networks
from .routes import routers
from .service import LibraryService, ModelChanged
from .settings import ServerSettings

STATIC = Path(__file__).parent / "static"


def create_app(
    library_root: Path, settings: ServerSettings | None = None, *, store=None, weights=None
) -> FastAPI:
    settings = settings or ServerSettings.from_env()
    service = LibraryService(
        library_root, allow_private_urls=settings.allow_private_urls, store=store, weights=weights
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()  # saves the index if the API changed it

    app = FastAPI(
        title="lookalike",
        version=__version__,
        description="Reverse image search: find copies of an image and images like it.",
        lifespan=lifespan,
    )
    app.state.service = service
    # Middleware added last runs first: CORS outermost (so that 413 and 429 answers carry its
    # headers and a page can read them), then the rate limit (before any body is read), then
    # the body limit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    if settings.rate_limit:
        app.add_middleware(
            RateLimiter,
            rate=settings.rate_limit,
            burst=settings.burst,
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
            expose_headers=["Retry-After"],
        )

    answer_errors_as_json(app)
    for router in routers(service, settings):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {
            "status": "ok",
            "images": len(service.index),
            "model": service.embedder.model_id,
            "text": service.embedder.supports_text,  # the page shows its text box
        }

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def answer_errors_as_json(app: FastAPI) -> None:
    """Every error the API gives is JSON: {"detail": "what went wrong"}."""

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body", "path"))
        return JSONResponse({"detail": f"{where or 'request'}: {first['msg']}"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def json_error(request: Request, exc: HTTPException):
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(ModelChanged)
    async def model_changed(request: Request, exc: ModelChanged):
        return JSONResponse({"detail": str(exc)}, status_code=503)
