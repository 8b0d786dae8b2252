"""`lookalike serve`: the REST API and the web page."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; put a reverse proxy in front).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages from ORIGIN call the API (repeatable; also $LOOKALIKE_CORS_ORIGINS).",
)
@click.option("--max-upload-mb", type=click.FloatRange(0.1), help="Largest upload [default: 32].")
@click.option(
    "--allow-private-urls",
    is_flag=True,
    help="Let URL searches and adds fetch from private and loopback addresses.",
)
@click.pass_obj
def serve_cmd(obj, host, port, cors_origins, max_upload_mb, allow_private_urls):
    """Serve the library: a web page at / to search by upload, paste, drop or URL and browse
    from result to result, and a REST API under /api/v1 (OpenAPI docs at /docs).

    \b
    Environment:
      LOOKALIKE_API_KEY    key for writes (POST /api/v1/images, DELETE); unset: no writes
      LOOKALIKE_READ_KEY   key for reads too; unset: reads are open
    """
    import uvicorn

    from ..server import ServerSettings, create_app

    settings = ServerSettings.from_env(
        cors_origins=tuple(cors_origins) or None,
        max_upload_bytes=int(max_upload_mb * 2**20) if max_upload_mb else None,
        allow_private_urls=allow_private_urls or None,
    )
    app = create_app(Path(obj["library"]), settings, store=obj["store"], weights=obj["weights"])
    click.echo(f"lookalike: serving {obj['library']} on http://{host}:{port}/", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
