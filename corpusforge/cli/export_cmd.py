from __future__ import annotations

import click

from .options import InputPath, completion_roles, domain_errors


@click.command("export")
@click.argument("corpus", type=InputPath("folder"))
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "arrow", "prompt-completion", "messages"]),
              default="parquet", show_default=True,
              help="parquet: the Hub's layout with its card; arrow: datasets.save_to_disk; prompt-completion or "
                   "messages: TRL's dataset shapes (JSONL and Parquet per split, with a card).")
@click.option("--system", help="messages: a system turn to put first.")
@click.option("--completion-from", help="The role(s) the completion starts at, e.g. conclusion (default: every "
              "role after the first).")
@click.option("--out", required=True, type=click.Path(), help="The folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (only once the new one is complete).")
@domain_errors
def command(corpus: str, fmt: str, out: str, overwrite: bool, system, completion_from) -> None:
    """Export CORPUS for use without the Hub, or for another trainer.

    \b
    Examples:
      corpusforge export my-corpus --out my-corpus-hub                       # Parquet shards + dataset card
      corpusforge export my-corpus --format prompt-completion --out for-trl  # {"prompt", "completion"}
      corpusforge export my-corpus --format messages --system "Think in structures." --out chat
    """
    from ..hub.dataset import export_corpus
    from ..hub.shapes import ShapeOptions

    roles = completion_roles(corpus, completion_from)
    shape = ShapeOptions(fmt, system, roles) if (system or roles or fmt in ("prompt-completion", "messages")) else None
    path = export_corpus(corpus, out, fmt, overwrite=overwrite, shape=shape)
    skipped = sum(shape.skipped.values()) if shape else 0
    click.echo(f"wrote {path}" + (f" ({skipped} record(s) without a completion role left out)" if skipped else ""))
