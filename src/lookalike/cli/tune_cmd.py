"""`lookalike tune`, and the learning that `index`, `crawl` and `reindex --model` do by themselves."""

from __future__ import annotations

from pathlib import Path

import click

from lookalike.library import Library
from lookalike.tuning import MIN_IMAGES, RECOLOUR_SHARE, SAMPLE, due, recolour_note, tune


@click.command("tune")
@click.option(
    "--sample",
    type=click.IntRange(2),
    default=SAMPLE,
    show_default=True,
    help="Images whose edited views are embedded to learn from (two each).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which images and edits.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.pass_obj
def tune_cmd(obj, sample, seed, quiet):
    """Learn how search ranks this library's images: a whitening of the model's vectors,
    learned from the library's own pictures and edited views of them (shrunk, cropped,
    recoloured), then again with the library's clearest pairs of look-alikes under the first,
    drawn closer together, and, where its pictures come in several sizes, its variants, drawn
    apart: small pictures of one size whose pixels are mostly the same (an icon with one screen
    lit or another). No labels are needed. On three of the bench sets it raised mAP@10 by 0.11
    to 0.30 (docs/quality.md).

    `lookalike index` does this by itself once a library holds MIN_IMAGES images, and again
    whenever it has doubled since; run it by hand after large deletions, or with another
    --sample. The originals are read again from where they were found (nothing is fetched);
    unreadable ones are skipped. When many of them (over RECOLOUR_SHARE) are palette swaps of
    one another (game art), a library made without --model is re-embedded with
    effnet-lite0-shape, which finds those; for one whose model was chosen, it says so.
    """
    with Library.open(Path(obj["library"]), write=True, store=obj["store"]) as library:
        if not library.catalog.vector_count():
            raise click.UsageError("the library has no images yet: index some first")
        return _tune(library, sample=sample, seed=seed, quiet=quiet)


tune_cmd.help = tune_cmd.help.replace("MIN_IMAGES", str(MIN_IMAGES)).replace(
    "RECOLOUR_SHARE", f"{RECOLOUR_SHARE:.0%}"
)


def tune_if_due(library: Library, *, quiet: bool) -> int:
    """After indexing: learn the whitening when tuner.due says so. Returns an exit status."""
    if not due(library):
        return 0
    return _tune(library, sample=SAMPLE, seed=0, quiet=quiet)


def _tune(library: Library, *, sample: int, seed: int, quiet: bool) -> int:
    before = library.model_name
    try:
        report = tune(library, sample=sample, seed=seed, progress=False if quiet else None)
    except KeyboardInterrupt:
        click.echo("interrupted: the ranking was not learned (lookalike tune learns it)", err=True)
        return 130
    switch = report.switch
    if switch is not None and not switch.swapped:
        click.echo(
            f"{report.recolour_share:.0%} of the {report.recolours_counted} are recolours "
            f"(palette swaps) of others, but the library could not switch to {switch.model_id}: "
            + (
                "interrupted (`lookalike tune` goes on where it stopped)"
                if switch.interrupted
                else f"{len(switch.unreadable)} originals are unreadable (`lookalike reindex "
                f"--model {library.embedder.recolour_blind} --drop-unreadable` leaves them out)"
            )
            + f"; it still searches with {before}",
            err=True,
        )
        if switch.interrupted:
            return 130
    if report.whitening is None:
        click.echo(
            f"could not learn the ranking: {report.unreadable} of the sampled originals are "
            "unreadable; search ranks by plain cosine similarity",
            err=True,
        )
        return 1
    if quiet:
        return 0
    if switch is not None and switch.swapped:
        click.echo(
            f"{report.recolour_share:.0%} of the {report.recolours_counted} are recolours "
            f"(palette swaps) of others: re-embedded the library's {switch.total} images with "
            f"{switch.model_id}, which ranks by shape and not colour, in {switch.seconds:.1f}s "
            f"(`lookalike reindex --model {before}` goes back to colours)",
            err=True,
        )
    click.echo(
        f"learned the ranking from {report.sampled} images ({report.unreadable} unreadable)"
        f", {report.neighbour_pairs} pairs of look-alikes and {report.variant_pairs} pairs of "
        f"variants in {report.seconds:.1f}s",
        err=True,
    )
    note = recolour_note(
        report.recolour_share, library.model_name, library.embedder.sees_colour,
        counted=report.recolours_counted,
    )  # fmt: skip
    if note and switch is None:  # a failed switch has said as much
        click.echo(f"note: {note}", err=True)
    return 0
