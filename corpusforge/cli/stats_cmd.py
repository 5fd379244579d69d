from __future__ import annotations

import click
import orjson

from .options import InputPath, domain_errors


@click.command("stats")
@click.argument("paths", nargs=-1, required=True, type=InputPath())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@domain_errors
def command(paths: tuple[str, ...], fmt: str) -> None:
    """Counts, lengths, distinct-n, continuations per premise and markers of a corpus."""
    from ..stats import corpus_stats, format_stats

    stats = corpus_stats(paths)
    click.echo(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() if fmt == "json" else format_stats(stats))
