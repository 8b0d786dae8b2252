"""`lookalike serve`: the REST API and the web page."""

from __future__ import annotations

from dataclasses import replace
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
@click.option(
    "--rate-limit",
    metavar="RATE",
    help="Per-client limit on /api requests: 20/s, 600/min, or off [default: off; "
    "also $LOOKALIKE_RATE_LIMIT].",
)
@click.option(
    "--burst",
    type=click.IntRange(1),
    help="Requests a client may make at once before --rate-limit applies "
    "[default: two seconds' worth; also $LOOKALIKE_RATE_BURST].",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDR",
    help="A reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For names the "
    "client, for the rate limit (also $LOOKALIKE_TRUSTED_PROXIES).",
)
@click.pass_obj
def serve_cmd(
    obj,
    host,
    port,
    cors_origins,
    max_upload_mb,
    allow_private_urls,
    rate_limit,
    burst,
    trusted_proxies,
):
    """Serve the library: a web page at / to search by upload, paste, drop or URL and browse
    from result to result, and a REST API under /api/v1 (OpenAPI docs at /docs).

    \b
    Environment:
      LOOKALIKE_API_KEY    key for writes (POST /api/v1/images, DELETE); unset: no writes
      LOOKALIKE_READ_KEY   key for reads too; unset: reads are open
      LOOKALIKE_RATE_LIMIT, LOOKALIKE_RATE_BURST, LOOKALIKE_TRUSTED_PROXIES  as the options
    """
    import uvicorn

    from lookalike.server import ServerSettings, create_app, parse_rate

    try:
        rate = parse_rate(rate_limit) if rate_limit is not None else None
        settings = ServerSettings.from_env(
            cors_origins=tuple(cors_origins) or None,
            max_upload_bytes=int(max_upload_mb * 2**20) if max_upload_mb else None,
            allow_private_urls=allow_private_urls or None,
            rate_limit=rate,
            rate_burst=burst,
            trusted_proxies=tuple(trusted_proxies) or None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if rate_limit is not None and rate is None:  # "--rate-limit off" beats the environment
        settings = replace(settings, rate_limit=None)
    app = create_app(Path(obj["library"]), settings, store=obj["store"], weights=obj["weights"])
    limit = f"{settings.rate_limit:g}/s, burst {settings.burst}" if settings.rate_limit else "off"
    click.echo(
        f"lookalike: serving {obj['library']} on http://{host}:{port}/ (rate limit: {limit})",
        err=True,
    )
    # proxy_headers=False: uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1 on its
    # own; which proxies to believe is --trusted-proxy's business, in one place.
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
    return 0
