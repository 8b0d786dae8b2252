"""`lookalike search`: many queries per call, one model load; a table or JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike.library import Library
from lookalike.search import QueryResult, Searcher, hit_to_dict


@click.command("search")
@click.argument("queries", nargs=-1)
@click.option(
    "--text",
    "-t",
    "texts",
    multiple=True,
    metavar="EXPR",
    help="Search by text (repeatable), on a library whose model embeds text (clip-vit-b-32). "
    'Mixed queries add and subtract terms with weights: "2:cat + ./img.jpg - fruit"; '
    "a term that is a file, an http(s) URL or id:N is a picture, the rest is text.",
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Results per query (after collapsing near-duplicates).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per query.")
@click.option("--no-collapse", is_flag=True, help="List near-duplicates as separate results.")
@click.option(
    "--verify",
    is_flag=True,
    help="Find edited copies: the best hits are checked with local features + RANSAC "
    "(pictures under 64 px: pixel by pixel, in every crop, frame, mirror and turn); the query "
    "is also searched turned by 90/180/270 degrees (under 64 px: by its 12x12 tiny picture, "
    "in every mirror and turn, by the picture inside a one-colour border, and as a crop of "
    "larger pictures). Verified copies come first, with the matched region and how "
    "much of the image it covers.",
)
@click.option(
    "--trim",
    is_flag=True,
    help="Cut the query pictures' transparent margins first, for a sprite cut with its frame "
    "from a sheet indexed with `index --tiles` (effnet-lite0 trims every picture itself).",
)
@click.pass_obj
def search_cmd(obj, queries, texts, k, as_json, no_collapse, verify, trim):
    """Find the images most like each QUERY.

    A QUERY is an image file, an http(s) URL of an image, or id:N for an image already in the
    library (which is then left out of its own results). Near-duplicates of a result are folded
    into it and listed under it.

    score: cosine similarity of the model's vectors; in a library that has learned its ranking
    (lookalike tune; index does it from 500 images on), the similarity under that ranking, for
    picture queries without --verify. Exact and copy tiers come first either way.

    \b
    By text, on a library built with a text model (lookalike models):
      lookalike search --text "red dragon sprite"
      lookalike search --text "2:cat + ./img.jpg - fruit"     # weights, pictures and text

    \b
    JSON Lines shape, one line per query:
      {"query": ..., "results": [{"id", "score", "source", "member", "page_url", "title",
        "author", "licence", "width", "height", "format", "tier", "duplicates": [...]}]}
    tier: "exact" (the same bytes or pixels), "copy" (an edited copy) or "similar". With
    --verify, hits also carry "verification": {"matched", "method" ("keypoints", or "pixels"
    where a picture is under 64 px), "inliers", "similarity" (pixels), "region": [x, y, w, h],
    "overlap", "mirrored"}.
    A query that fails gives {"query": ..., "error": "...", "results": []} and exit status 1.
    """
    if not queries and not texts:
        raise click.UsageError("give at least one QUERY (a picture) or --text")
    with Library.open(Path(obj["library"]), store=obj["store"], weights=obj["weights"]) as library:
        results = Searcher(library, trim=trim).search(
            list(queries), k, collapse=not no_collapse, verify=verify, texts=list(texts)
        )
    for result in results:
        if as_json:
            click.echo(json.dumps(result_to_json(result), ensure_ascii=False))
        else:
            _print_table(result)
    return 1 if any(r.error for r in results) else 0


def result_to_json(result: QueryResult) -> dict:
    out: dict = {"query": result.query}
    if result.error:
        out["error"] = result.error
    out["results"] = [hit_to_dict(h) for h in result.hits]
    return out


def _print_table(result: QueryResult) -> None:
    click.secho(f"query: {result.query}", bold=True)
    if result.error:
        click.secho(f"  error: {result.error}", fg="red")
        return
    if not result.hits:
        click.echo("  no results (is the library empty?)")
        return
    click.echo(f"  {'#':>3}  {'score':>6}  {'id':>7}  {'size':>11}  source")
    for rank, hit in enumerate(result.hits, 1):
        record = hit.record
        size = f"{record.width}x{record.height}" if record.width else "?"
        place = record.first_place
        where = place.display if place else "(no place recorded)"
        extra = len(record.places) - 1
        if extra:
            where += f"  (+{extra} other place{'s' * (extra > 1)})"
        click.echo(f"  {rank:>3}  {hit.score:6.3f}  {hit.id:>7}  {size:>11}  {where}")
        if hit.tier != "similar":
            note = hit.tier
            v = hit.verification
            if v is not None and v.matched and v.region:
                x, y, w, h = v.region
                how = (
                    f"pixel similarity {v.similarity:.3f}"
                    if v.method == "pixels"
                    else f"{v.inliers} points"
                )
                note += f": matched at {x},{y} {w}x{h} ({v.overlap:.0%} of it), {how}"
                note += ", mirrored" if v.mirrored else ""
            click.echo(f"  {'':>34}{note}")
        if place and (place.title or place.author or place.licence):
            meta = " | ".join(x for x in (place.title, place.author, place.licence) if x)
            click.echo(f"  {'':>34}{meta}")
        for dup in hit.duplicates:
            dplace = dup.record.first_place
            click.echo(
                f"  {'':>3}  {dup.score:6.3f}  {dup.id:>7}  {'':>11}  "
                f"= near-duplicate: {dplace.display if dplace else '?'}"
            )
