"""`lookalike crawl opengameart` and `lookalike crawl site`."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from lookalike.ingest import Crawler, CrawlReport
from lookalike.library import Library
from lookalike.sources import (
    ART_TYPES,
    DEFAULT_BASE_URL,
    USER_AGENT,
    FetchPolicy,
    GenericSite,
    OpenGameArt,
    SiteAdapter,
)

from .index_cmds import print_report
from .tune_cmd import tune_if_due


@click.group("crawl")
def crawl_cmd():
    """Crawl a website and index the images it offers, with their page metadata.

    Every step (listing pages, content pages, files) keeps its queue in the library's catalog,
    so an interrupted crawl resumes where it stopped and a second crawl fetches only what is
    new. robots.txt is honoured and requests are rate-limited per host.
    """


def polite_options(command):
    @click.option(
        "--rate",
        type=click.FloatRange(0.01),
        default=1.0,
        show_default=True,
        help="Requests per second to one host (robots.txt Crawl-delay wins if slower).",
    )
    @click.option(
        "--user-agent",
        default=USER_AGENT,
        show_default=False,
        help="User-Agent header (default: lookalike/<version> with a project link).",
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(1, 32),
        default=4,
        show_default=True,
        help="Fetches at a time.",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(1),
        default=30.0,
        show_default=True,
        help="Seconds to wait for a server.",
    )
    @click.option(
        "--retries",
        type=click.IntRange(0, 10),
        default=3,
        show_default=True,
        help="Attempts after the first, on network errors, 429 and 5xx.",
    )
    @click.option(
        "--retry-wait",
        type=click.FloatRange(0),
        default=1.0,
        show_default=True,
        help="Seconds before the first retry, doubled each time (Retry-After wins).",
    )
    @click.option(
        "--allow-private",
        is_flag=True,
        help="Allow private, loopback and link-local addresses (refused by default).",
    )
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars or summary.")
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)

    return wrapper


@crawl_cmd.command("opengameart")
@click.option("--query", default="", help="Search words (empty: everything of the art type).")
@click.option("--art-type", type=click.Choice(sorted(ART_TYPES)), default="2d", show_default=True)
@click.option("--max-pages", type=click.IntRange(1), help="Listing pages to read in this crawl.")
@click.option(
    "--base-url",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="Where OpenGameArt lives (a mirror, or a test server).",
)
@polite_options
@click.pass_obj
def opengameart_cmd(obj, query, art_type, max_pages, base_url, **polite):
    """OpenGameArt.org: search results -> content pages (title, author, licences, tags)
    -> files under /sites/default/files/ -> archives -> images."""
    site = OpenGameArt(base_url=base_url, query=query, art_type=art_type)
    return _crawl(obj, site, max_listings=max_pages, max_pages=None, **polite)


@crawl_cmd.command("site")
@click.argument("start_url")
@click.option(
    "--follow",
    required=True,
    metavar="REGEX",
    help="Follow links whose URL matches this (pages to read).",
)
@click.option(
    "--files",
    required=True,
    metavar="REGEX",
    help="Download links whose URL matches this (images and archives).",
)
@click.option("--max-pages", type=click.IntRange(1), help="Pages to read in this crawl.")
@click.option("--other-hosts", is_flag=True, help="Also follow and download from other hosts.")
@polite_options
@click.pass_obj
def site_cmd(obj, start_url, follow, files, max_pages, other_hosts, **polite):
    """Any site: start at START_URL, read pages whose URLs match --follow, download files
    whose URLs match --files. Titles come from og:title or <title>, authors from
    <meta name="author">, licences from rel="license" links."""
    site = GenericSite(start_url, follow=follow, files=files, other_hosts=other_hosts)
    return _crawl(obj, site, max_listings=1, max_pages=max_pages, **polite)


def _crawl(obj, site: SiteAdapter, *, max_listings, max_pages, rate, user_agent, concurrency,
           timeout, retries, retry_wait, allow_private, quiet) -> int:  # fmt: skip
    policy = FetchPolicy(
        allow_private=allow_private,
        timeout=timeout,
        retries=retries,
        backoff=retry_wait,
        requests_per_second=rate,
        respect_robots=True,
        user_agent=user_agent,
    )
    with Library.open(
        Path(obj["library"]), write=True, store=obj["store"], weights=obj["weights"]
    ) as library:
        report = Crawler(
            library,
            site,
            policy,
            max_listings=max_listings,
            max_pages=max_pages,
            concurrency=concurrency,
            progress=False if quiet else None,
        ).run()
        if not quiet:
            _print_crawl(report)
            if report.index is not None:
                print_report(report.index, library)
        if report.interrupted:
            return 130
        return tune_if_due(library, quiet=quiet)


def _print_crawl(report: CrawlReport) -> None:
    click.echo(
        f"crawl: {report.listings} listing pages, {report.pages} content pages read, "
        f"{report.new_files} new files found, {report.downloaded} downloaded, "
        f"{len(report.failed)} failed",
        err=True,
    )
    for url, error in report.failed[:10]:
        click.echo(f"  failed: {url}: {error}", err=True)
    if len(report.failed) > 10:
        click.echo(f"  ... and {len(report.failed) - 10} more", err=True)
    if report.interrupted:
        click.echo("interrupted: run the same command again to resume", err=True)
