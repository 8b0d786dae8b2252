"""`lookalike stats` and `lookalike export`: what the catalog holds."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from lookalike.library import Library, library_stats

EXPORT_COLUMNS = [
    "id", "sha256", "byte_size", "width", "height", "format", "status", "error", "model",
    "source", "member", "page_url", "title", "author", "licence", "tags",
]  # fmt: skip


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def stats_cmd(obj, as_json):
    """Counts per status, the model, the index type and the bytes on disk."""
    with Library.open(Path(obj["library"]), store=obj["store"]) as library:
        stats = library_stats(library)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return 0
    status = stats["status"]
    click.echo(f"library   {stats['library']}")
    chosen = {"user": "chosen by the user", "default": "the default", "tune": "chosen by tune"}
    share = stats["recolour_share"]
    swaps = f"; {share:.0%} of the pictures are palette swaps" if share else ""
    click.echo(
        f"model     {stats['model_id'] or stats['model']} ({stats['dim'] or '?'} dims; "
        f"{chosen.get(stats['model_chosen_by'], stats['model_chosen_by'])}{swaps})"
    )
    click.echo(
        f"images    {stats['images']}: {status['indexed']} indexed, {status['embedded']} embedded"
        f" (not yet in the saved index), {status['decoded']} decoded, {status['failed']} failed"
    )
    click.echo(f"places    {stats['places']} (files, archive members and URLs)")
    for name in ("archives", "downloads"):
        if stats[name]:
            parts = ", ".join(f"{n} {status}" for status, n in sorted(stats[name].items()))
            click.echo(f"{name:9s} {parts}")
    click.echo(f"index     {stats['index']['type']}, {stats['index']['vectors']} vectors")
    ranking = stats["ranking"]
    click.echo(
        f"ranking   whitening learned from {ranking['learned_from']} images (lookalike tune)"
        if ranking["whitening"]
        else "ranking   cosine similarity (no whitening learned yet: lookalike tune)"
    )
    total = sum(stats["bytes_on_disk"].values())
    parts = ", ".join(f"{k} {_human(v)}" for k, v in stats["bytes_on_disk"].items())
    click.echo(f"disk      {_human(total)} ({parts})")
    return 0


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@click.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["tsv", "jsonl"]), default="tsv", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)
@click.pass_obj
def export_cmd(obj, fmt, output):
    """Dump the catalog: one row per place an image was found.

    Columns: id, sha256, byte_size, width, height, format, status, error, model, source,
    member, page_url, title, author, licence, tags. TSV escapes tabs and newlines in values;
    tags are comma-separated there and a list in JSON Lines.
    """
    with Library.open(Path(obj["library"]), store=obj["store"]) as library:
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            rows = 0
            if fmt == "tsv":
                writer = csv.writer(out, delimiter="\t", lineterminator="\n")
                writer.writerow(EXPORT_COLUMNS)
                for row in library.catalog.export_rows():
                    row["tags"] = ",".join(row["tags"])
                    writer.writerow([_tsv_value(row[c]) for c in EXPORT_COLUMNS])
                    rows += 1
            else:
                for row in library.catalog.export_rows():
                    out.write(json.dumps({c: row[c] for c in EXPORT_COLUMNS}, ensure_ascii=False))
                    out.write("\n")
                    rows += 1
        finally:
            if output:
                out.close()
    if output:
        click.echo(f"wrote {rows} rows to {output}", err=True)
    return 0


def _tsv_value(value) -> str:
    if value is None:
        return ""
    # One record per line, whatever the file names hold (file names may contain newlines).
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )
