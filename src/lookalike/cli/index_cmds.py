"""`lookalike index` and `lookalike reindex`."""

from __future__ import annotations

from pathlib import Path

import click

from lookalike.ingest import IndexReport, index_paths
from lookalike.library import Library
from lookalike.pictures import DEFAULT_MAX_PIXELS
from lookalike.sources import FetchPolicy, is_url, read_url_list

from .tune_cmd import tune_if_due


@click.command("index")
@click.argument("targets", nargs=-1)
@click.option(
    "--urls",
    "url_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also index the URLs listed in this file, one per line (# starts a comment).",
)
@click.option("--prune", is_flag=True, help="Forget images whose files under the folders are gone.")
@click.option("--retry-failed", is_flag=True, help="Try again files that failed to decode before.")
@click.option(
    "--workers", type=click.IntRange(1), help="Decoding processes [default: one per core]."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Images per model call.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels than this (decompression bombs).",
)
@click.option(
    "--model",
    default=None,
    help="Embedding model for a new library [default: effnet-lite0, which tune swaps for "
    "effnet-lite0-shape if most pictures are palette swaps]; `lookalike models` lists them. An "
    "existing library keeps its model (reindex --model changes it).",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow URLs on private, loopback and link-local addresses (refused by default).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Downloads at a time.",
)
@click.option(
    "--tiles",
    is_flag=True,
    help="Also index each sprite of sprite sheets and tilesets, so that one sprite finds the "
    "sheet it came from (pictures decoded in this run; costs one embedding per sprite).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option(
    "--save-every", type=click.FloatRange(min=0), default=300.0, hidden=True,
    help="Seconds between index saves during a run (crash tests save often).",
)  # fmt: skip
@click.pass_obj
def index_cmd(
    obj, targets, url_file, prune, retry_failed, workers, batch_size, max_pixels, model,
    allow_private, concurrency, tiles, quiet, save_every,
):  # fmt: skip
    """Add images to the library from TARGETS: folders (recursively), files, archives (zip,
    rar, 7z, tar), and http(s) URLs of images or archives.

    Incremental: files whose size and modification time are unchanged are skipped without
    being read, and files whose bytes the library already has are recorded as another place of
    the same image, not embedded again. Files that cannot be decoded are recorded with their
    error and the run goes on. Ctrl-C (or a crash) leaves a consistent library: run the same
    command again to finish.

    URLs are downloaded once into the library's download cache (retried with backoff,
    size-capped, checked by content rather than by name); an image keeps its URL as its place.
    """
    targets = list(targets) + (read_url_list(url_file) if url_file else [])
    if not targets:
        raise click.UsageError("give at least one folder, file or URL (or --urls FILE)")
    for target in targets:
        if not is_url(target) and not Path(target).exists():
            raise click.BadParameter(f"no such file or folder: {target}", param_hint="TARGETS")
    with Library.open(
        Path(obj["library"]), write=True, model=model, store=obj["store"], weights=obj["weights"]
    ) as library:
        report = index_paths(
            library,
            targets,
            fetch_policy=FetchPolicy(allow_private=allow_private),
            concurrency=concurrency,
            prune=prune,
            retry_failed=retry_failed,
            workers=workers,
            batch_size=batch_size,
            max_pixels=max_pixels,
            save_every=save_every,
            tiles=tiles,
            progress=False if quiet else None,
        )
        if not quiet:
            print_report(report, library)
        if report.interrupted:
            return 130
        return tune_if_due(library, quiet=quiet)


def print_report(report: IndexReport, library: Library) -> None:
    rate = (report.processed + report.tiles) / report.seconds if report.seconds else 0.0
    archives = f" ({report.archives} archives opened)" if report.archives else ""
    click.echo(
        f"{'interrupted: ' if report.interrupted else ''}"
        f"{report.found} images found{archives}: {report.added} added, {report.known} already known, "
        f"{report.unchanged} unchanged, {report.failed} failed, {report.removed} removed"
        f"{f', {report.tiles} sprites from sheets' if report.tiles else ''} "
        f"in {report.seconds:.1f}s ({rate:.0f} images/s)",
        err=True,
    )
    for place, message in report.errors[:10]:
        click.echo(f"  failed: {place}: {message}", err=True)
    if report.failed > 10:
        click.echo(
            f"  ... and {report.failed - 10} more (lookalike export lists them all)", err=True
        )
    if report.interrupted:
        click.echo("run the same command again to finish", err=True)
    click.echo(f"library {library.root}: {len(library.index)} images searchable", err=True)


@click.command("reindex")
@click.option(
    "--model",
    default=None,
    help="Re-embed every image with this model (see `lookalike models`) into a new index.",
)
@click.option(
    "--drop-unreadable",
    is_flag=True,
    help="With --model: leave out (mark failed) images whose originals cannot be read any more, "
    "instead of stopping before the switch.",
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=16, show_default=True,
    help="With --model: images per model call.",
)  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_obj
def reindex_cmd(obj, model, drop_unreadable, batch_size, quiet):
    """Rebuild the vector index from the vectors stored in the catalog.

    Nothing is decoded or embedded again. Use it after the index file was lost or damaged, or
    to switch layout (exact vs. approximate search is chosen by library size).

    With --model NAME, every image is read again from where it was found (files, archives,
    the download cache; nothing is fetched) and embedded with NAME beside the current vectors;
    once all are done the library switches to the new model and index in one step. Until then
    search keeps working on the old ones, and an interrupted run resumes where it stopped.
    """
    if model is None:
        with Library.open(Path(obj["library"]), write=True, store=obj["store"]) as library:
            index = library.rebuild_index()
            click.echo(
                f"rebuilt {library.index_path}: {len(index)} vectors, {index.kind}", err=True
            )
        return 0
    from lookalike.embed import model_info
    from lookalike.ingest import reembed

    try:
        model_info(model)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    with Library.open(Path(obj["library"]), write=True, store=obj["store"]) as library:
        before = library.catalog.get_meta("model_id") or library.model_name
        report = reembed(
            library, model, weights=obj["weights"], batch_size=batch_size,
            drop_unreadable=drop_unreadable, progress=False if quiet else None,
        )  # fmt: skip
        done = report.already + report.embedded
        click.echo(
            f"{done} of {report.total} images embedded with {report.model_id} "
            f"({report.embedded} in this run, {report.seconds:.1f}s)",
            err=True,
        )
        for image_id, why in report.unreadable[:10]:
            click.echo(f"  unreadable: id {image_id}: {why}", err=True)
        if report.swapped:
            dropped = f", {len(report.unreadable)} left out" if report.unreadable else ""
            click.echo(
                f"the library now uses {report.model_id} instead of {before}: "
                f"{len(library.index)} vectors in {library.index_path}{dropped}",
                err=True,
            )
            return tune_if_due(library, quiet=quiet)  # the old model's whitening is unusable
        if report.interrupted:
            click.echo(f"interrupted: still searching with {before}; run again to finish", err=True)
            return 130
        click.echo(
            f"{len(report.unreadable)} originals could not be read: still searching with "
            f"{before}. Make them readable and run again, or pass --drop-unreadable",
            err=True,
        )
        return 1


@click.command("migrate")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="STORE",
    help="faiss, milvus://HOST:19530, or a Milvus Lite file path (vectors.db).",
)
@click.option(
    "--milvus-index",
    type=click.Choice(["AUTOINDEX", "IVF_FLAT", "HNSW", "FLAT"]),
    help="Index type of the new Milvus collection [default: AUTOINDEX].",
)
@click.option("--milvus-params", metavar="JSON", help="Its parameters, e.g. '{\"nlist\": 2048}'.")
@click.option(
    "--milvus-metric",
    type=click.Choice(["IP", "COSINE", "L2"]),
    help="Metric of the new Milvus collection [default: IP].",
)
@click.pass_obj
def migrate_cmd(obj, target, milvus_index, milvus_params, milvus_metric):
    """Move the library's vectors to another store: an embedded library into Milvus, or back.

    Every vector is copied from the catalog (nothing is re-embedded); the library then uses
    the new store. The old one is left as it was: delete a Milvus collection by hand, once
    satisfied (its name is in `lookalike stats`).
    """
    import json

    from lookalike.index import StoreConfig

    try:
        params = json.loads(milvus_params) if milvus_params else None
        config = StoreConfig.parse(
            target, index_type=milvus_index, params=params, metric=milvus_metric
        )
    except (ValueError, json.JSONDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    with Library.open(Path(obj["library"]), write=True) as library:
        before = library.store.describe()
        if config.same_place(library.store):
            raise click.UsageError(f"the library already keeps its vectors in {before}")
        copied = library.migrate(config)
        click.echo(f"moved {copied} vectors from {before} to {config.describe()}", err=True)
    return 0
