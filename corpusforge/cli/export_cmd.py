from __future__ import annotations

import click

from .options import InputPath, domain_errors


@click.command("export")
@click.argument("corpus", type=InputPath("folder"))
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "arrow"]), default="parquet",
              show_default=True, help="parquet: the Hub's layout with its card; arrow: datasets.save_to_disk.")
@click.option("--out", required=True, type=click.Path(), help="The folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (only once the new one is complete).")
@domain_errors
def command(corpus: str, fmt: str, out: str, overwrite: bool) -> None:
    """Export CORPUS for use without the Hub (Parquet shards + card, JSONL, or an Arrow dataset)."""
    from ..hub.dataset import export_corpus

    click.echo(f"wrote {export_corpus(corpus, out, fmt, overwrite=overwrite)}")
