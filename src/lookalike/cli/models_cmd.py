"""`lookalike models`: the embedders this lookalike knows, and what each needs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lookalike.embed import DEFAULT_MODEL, MODELS
from lookalike.library import CATALOG_FILE, MODELS_DIR


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model, per line.")
@click.pass_obj
def models_cmd(obj, as_json):
    """List the embedding models: name, vector size, whether it embeds text (search by text),
    whether its runtime and weights are here, and where the weights come from.

    \b
    A library is built with one model, chosen when it is created:
      lookalike -L art index --model clip-vit-b-32 ~/art
    and can be re-embedded with another (the old index works until the new one is ready):
      lookalike -L art reindex --model resnet50
    Weights of models not shipped with lookalike are looked for in the library's models/
    folder (or the file or folder given with --weights), and otherwise downloaded there on
    first use. Offline: fetch the URL listed here elsewhere and copy it into models/.
    """
    root = Path(obj["library"])
    cache_dir = root / MODELS_DIR
    # a folder given with --weights may hold several models' files; a file is one model's
    given = obj["weights"] if obj["weights"] and Path(obj["weights"]).is_dir() else None
    in_use = None
    if (root / CATALOG_FILE).exists():
        from lookalike.library import Library

        with Library.open(root) as library:
            in_use = library.model_name
    rows = []
    for info in MODELS.values():
        runtime = info.runtime_installed()
        rows.append(
            {
                "name": info.name,
                "dim": info.dim,
                "text": info.text,
                "default": info.name == DEFAULT_MODEL,
                "in_use": info.name == in_use,
                "runtime": "installed" if runtime else f"pip install 'lookalike[{info.extra}]'",
                "weights": info.weights_state(given, cache_dir),
                "source": info.weights,
                "licence": info.licence,
                "about": info.about,
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return 0
    click.echo(f"{'model':18} {'dim':>5}  {'text':4}  {'runtime':30}  weights")
    for row in rows:
        mark = " *" if row["in_use"] else ""
        click.echo(
            f"{row['name'] + mark:18} {row['dim']:>5}  {'yes' if row['text'] else 'no':4}  "
            f"{row['runtime']:30}  {row['weights']}"
        )
        click.echo(f"{'':18} {'':>5}  {'':4}  {row['about']}")
        click.echo(f"{'':18} {'':>5}  {'':4}  weights from {row['source']}; {row['licence']}")
    click.echo(f"\nweights cache: {cache_dir}/" + ("   (* this library's model)" if in_use else ""))
    click.echo("details, speeds and licences: docs/models.md")
    return 0
