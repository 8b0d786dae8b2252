"""`lookalike eval`: retrieval and copy-detection quality on a labelled data set."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--by",
    type=click.Choice(["group", "category"]),
    default="group",
    show_default=True,
    help="Which ground-truth column makes two images relevant to each other.",
)
@click.option("--copies", is_flag=True, help="Measure copy detection instead (edited copies).")
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="With --copies: originals to copy (each is copied 11 ways).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="With --copies: the copies' seed."
)
@click.option("--verify", is_flag=True, help="With --copies: check the top hits geometrically.")
@click.option(
    "--sprites",
    is_flag=True,
    help="Measure whether sprites cut from sheets find their sheet, with and without --tiles.",
)
@click.option(
    "--cell",
    type=click.IntRange(4),
    help="With --sprites: cut whole grid cells of this size (e.g. 64 for LPC sheets) rather "
    "than the sprite plus a random margin.",
)
@click.option(
    "--model",
    default=None,
    help="Embedding model [default: effnet-lite0, or effnet-lite0-shape where learning the "
    "ranking finds the set mostly palette swaps, as `lookalike index` does].",
)
@click.option(
    "--keep-library",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build the evaluation library here and keep it (default: a temporary one).",
)
@click.option(
    "--no-tune",
    is_flag=True,
    help="Rank by plain cosine similarity: skip learning the ranking (lookalike tune) that "
    "`lookalike index` does for a library of 500 images or more.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def eval_cmd(
    obj, dataset, by, copies, sample, seed, verify, sprites, cell, model, keep_library, no_tune,
    as_json,
):  # fmt: skip
    """Measure search quality on DATASET: a folder with a groundtruth.csv (columns path,
    group, category, role), as in ../shared/bench-data.

    \b
    Retrieval (default): indexes the set into a temporary library and queries every labelled
    image against all the others (leave-one-out), or role=query rows against role=gallery
    rows when the set has both. Reports mAP@10, recall@1, recall@10, precision@10 and the
    worst groups and categories.
    Copies (--copies): copies a sample with crops, rescales, JPEG, colour and hue changes,
    greyscale, flips, rotations, text, borders and combinations; searches each copy against
    the whole set; reports recall@1/@10 per transform, the scores that separate copies from
    other images, and the precision of the exact/copy match tiers.
    Sprites (--sprites): cuts sprites out of up to --sample sheets (3 each) and searches for
    their sheet, in a library of the sheets indexed whole and one indexed with --tiles, each
    query as cut and with --trim; reports recall@1/@10 of the sheet.
    """
    from lookalike.evaluation import evaluate_copies, evaluate_retrieval

    if sprites:
        from lookalike.evaluation import evaluate_sprites

        report = evaluate_sprites(dataset, sheets=sample, cell=cell, seed=seed, model=model,
                                  weights=obj["weights"], tune=not no_tune,
                                  progress=None if not as_json else False)  # fmt: skip
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
        else:
            _print_sprites(report)
        return 0
    if copies:
        report = evaluate_copies(dataset, sample=sample, seed=seed, library_root=keep_library,
                                 model=model, progress=None if not as_json else False,
                                 verify=verify, weights=obj["weights"],
                                 tune=not no_tune)  # fmt: skip
    else:
        report = evaluate_retrieval(dataset, by=by, library_root=keep_library, model=model,
                                    progress=None if not as_json else False,
                                    weights=obj["weights"], tune=not no_tune)  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif copies:
        _print_copies(report)
    else:
        _print_retrieval(report)
    return 0


def _print_retrieval(r) -> None:
    click.echo(
        f"{r.dataset}: {r.protocol} by {r.by}, {r.queries} queries over {r.images} images, {r.model}"
    )
    click.echo(f"  mAP@{r.k} {r.map_at_k:.3f}   recall@1 {r.recall_at_1:.3f}   "
               f"recall@{r.k} {r.recall_at_k:.3f}   precision@{r.k} {r.precision_at_k:.3f}")  # fmt: skip
    plural = {"group": "groups", "category": "categories"}[r.by]
    for title, rows in (
        (f"worst {plural}", r.worst_labels),
        ("worst categories", r.worst_categories),
    ):
        if rows:
            click.echo(
                f"  {title}: "
                + ", ".join(f"{s.label} {s.map_at_k:.2f} ({s.queries})" for s in rows)
            )
    click.echo(f"  ({r.seconds:.0f} s)")


def _print_copies(r) -> None:
    click.echo(f"{r.dataset}: {r.copies} copies of {r.originals} originals, {r.negatives} "
               f"held-out negatives, {r.model}")  # fmt: skip
    click.echo(f"  recall@1 {r.recall_at_1:.3f}   recall@10 {r.recall_at_10:.3f}")
    click.echo(f"  {'transform':10s} {'copies':>6s} {'R@1':>6s} {'R@10':>6s} {'median score':>13s}")
    for t in r.per_transform:
        click.echo(
            f"  {t.transform:10s} {t.queries:6d} {t.recall_at_1:6.3f} {t.recall_at_10:6.3f} {t.median_score:13.3f}"
        )
    click.echo(f"  score of the original: {r.copy_scores}")
    click.echo(f"  best other image:      {r.other_scores}")
    click.echo(f"  tiers{' (verified)' if r.verify else ''}: {r.tiers}")
    for w in r.wrong_tiers:  # the hits that make copy_tier_precision less than 1
        what = f"a copy ({w['copy']})" if w["copy"] else "held out (no copy indexed)"
        twin = ", a twin of it" if w["twin"] else ""
        click.echo(f"    {w['original']}, {what}: {w['tier']} {w['top']}{twin}")
    for w in r.right_unlabelled:  # counted right, though the ground truth does not say so
        what = f"a copy ({w['copy']})" if w["copy"] else "held out"
        click.echo(f"    {w['original']}, {what}: {w['tier']} {w['top']}, right as {w['why']}")
    click.echo(f"  time per query: {r.query_ms} ms")
    click.echo(f"  ({r.seconds:.0f} s)")


def _print_sprites(r) -> None:
    click.echo(f"{r.dataset}: {r.queries} sprites cut ({r.cut}) from {r.sheets} sheets, {r.model}")
    for run in r.runs:
        library = f"{'with --tiles' if run.tiles else 'sheets whole'} ({r.images['tiled' if run.tiles else 'whole']:,} images)"
        click.echo(
            f"  {library:34s} {'--trim' if run.trim else 'as cut':6s}  recall@1 "
            f"{run.recall_at_1:.3f}   recall@10 {run.recall_at_10:.3f}   "
            f"query p50 {run.query_ms_p50:.1f} ms"
        )
