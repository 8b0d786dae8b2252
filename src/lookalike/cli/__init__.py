"""The `lookalike` command line (click): `main` runs it. Each group of commands lives in a
module of this package, and errors reach the user as one clear line, never a traceback."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import click

from lookalike import __version__
from lookalike.embed import ModelUnavailableError, TextNotSupportedError
from lookalike.index import StoreConfig, StoreError
from lookalike.library import LibraryError

from .catalog_cmds import export_cmd, stats_cmd
from .check_cmd import check_cmd
from .crawl_cmds import crawl_cmd
from .eval_cmd import eval_cmd
from .index_cmds import index_cmd, migrate_cmd, reindex_cmd
from .models_cmd import models_cmd
from .search_cmd import search_cmd
from .serve_cmd import serve_cmd
from .tune_cmd import tune_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lookalike")
@click.option(
    "--library",
    "-L",
    "library_path",
    type=click.Path(file_okay=False),
    envvar="LOOKALIKE_LIBRARY",
    default="lookalike-library",
    show_default=True,
    help="Library folder (catalog, index, caches). Also set by $LOOKALIKE_LIBRARY.",
)
@click.option(
    "--store",
    "-S",
    envvar="LOOKALIKE_STORE",
    metavar="STORE",
    help="Where a new library keeps its vectors: faiss (default: a file in the library) or "
    "milvus://HOST:19530 or a Milvus Lite file (vectors.db). Recorded at creation; also set "
    "by $LOOKALIKE_STORE.",
)
@click.option(
    "--milvus-index",
    type=click.Choice(["AUTOINDEX", "IVF_FLAT", "HNSW", "FLAT"]),
    help="With a Milvus store: the index type of a new collection [default: AUTOINDEX].",
)
@click.option(
    "--milvus-params",
    metavar="JSON",
    help="With a Milvus store: index parameters, e.g. '{\"nlist\": 2048}' or '{\"M\": 16}'.",
)
@click.option(
    "--milvus-metric",
    type=click.Choice(["IP", "COSINE", "L2"]),
    help="With a Milvus store: the metric of a new collection [default: IP]. Vectors are unit "
    "length, so all rank alike; scores are shown as cosine similarity.",
)
@click.option(
    "--weights",
    "-W",
    envvar="LOOKALIKE_WEIGHTS",
    type=click.Path(exists=True, path_type=Path),
    help="The model's weights file (or a folder holding it), for models not shipped with "
    "lookalike when they are not in the library's models/ cache and cannot be downloaded. "
    "Also set by $LOOKALIKE_WEIGHTS. See `lookalike models`.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    library_path: str,
    store,
    milvus_index,
    milvus_params,
    milvus_metric,
    weights,
) -> None:
    """lookalike: self-hosted reverse image search.

    Index folders of images, then find where an image appears (exact and edited copies) and
    which images look like it. Everything lives in one library folder; no server needed.

    \b
    Quick start:
      lookalike index ~/Pictures/game-art      # embed every image under the folder
      lookalike search some-sprite.png         # its nearest neighbours
      lookalike search id:42 --json            # from an indexed image, as JSON Lines
      lookalike index https://example.org/pack.zip   # images and archives on the web
      lookalike crawl opengameart --query dragon --max-pages 2
      lookalike serve                          # web page + REST API on :8000
      lookalike stats                          # what the library holds
      lookalike models                         # the embedding models, and their weights
      lookalike search --text "red dragon"     # by text, on a library built with CLIP
    """
    try:
        params = json.loads(milvus_params) if milvus_params else None
        config = (
            StoreConfig.parse(store, index_type=milvus_index, params=params, metric=milvus_metric)
            if store
            else None
        )
    except (ValueError, json.JSONDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--store / --milvus-params") from None
    ctx.obj = {"library": library_path, "store": config, "weights": weights}


cli.add_command(index_cmd)
cli.add_command(reindex_cmd)
cli.add_command(search_cmd)
cli.add_command(stats_cmd)
cli.add_command(export_cmd)
cli.add_command(crawl_cmd)
cli.add_command(serve_cmd)
cli.add_command(eval_cmd)
cli.add_command(migrate_cmd)
cli.add_command(check_cmd)
cli.add_command(models_cmd)
cli.add_command(tune_cmd)


def main(argv: list[str] | None = None) -> int:
    try:
        return cli.main(args=argv, prog_name="lookalike", standalone_mode=False) or 0
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (LibraryError, StoreError, ModelUnavailableError, TextNotSupportedError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        click.echo(
            f"error: the disk is full ({exc}). Free some space and run the same command again: "
            "everything committed so far is kept (`lookalike check` verifies the library).",
            err=True,
        )
        return 1


def is_disk_full(exc: BaseException | None) -> bool:
    """A full disk, as SQLite, the OS or FAISS report it, anywhere in the exception chain."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
