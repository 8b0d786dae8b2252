"""`lookalike check [--repair]`: verify catalog <-> index <-> files, rebuild what is derived."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike.upkeep import check_library


@click.command("check")
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild the index from the stored vectors and fix what can be fixed.",
)
@click.option(
    "--no-files",
    is_flag=True,
    help="Skip checking that the source files still exist (slow on network drives).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def check_cmd(obj, repair, no_files, as_json):
    """Verify that the library is consistent: the catalog is a sound SQLite file, every vector
    is sound, the index holds exactly the vectors the catalog says it does and finds them, and
    the files places point at still exist.

    Exits with 1 when something is wrong. With --repair, rebuilds the index from the vectors
    the catalog keeps, drops unsound vectors (their images are embedded again by the next
    `lookalike index` run), and removes dangling rows; then checks again. A damaged catalog is
    not repaired: the report says how to recover it. Takes the library's write lock, so it
    waits for no one: it refuses while an index job runs.
    """
    report = check_library(Path(obj["library"]), repair=repair, files=not no_files)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "counts": report.counts,
                    "findings": [f.__dict__ for f in report.findings],
                    "repaired": report.repaired,
                },
                indent=2,
            )
        )
    else:
        for line in report.repaired:
            click.echo(f"repaired: {line}", err=True)
        for name, value in report.counts.items():
            click.echo(f"{name:24s} {value}")
        for finding in report.findings:
            hint = " (--repair fixes this)" if finding.repairable and not repair else ""
            click.echo(f"{finding.severity}: {finding.area}: {finding.message}{hint}", err=True)
        click.echo("ok: the library is consistent" if report.ok else
                   f"{len(report.errors)} problems found", err=True)  # fmt: skip
    return 0 if report.ok else 1
