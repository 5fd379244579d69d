from __future__ import annotations

import sys

import click

from . import domain_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--n", "n", type=click.IntRange(min=10), default=2000, show_default=True, help="Records to generate.")
@click.option("--seed", type=int, default=0, show_default=True)
@domain_errors
def command(out: str, n: int, seed: int) -> None:
    """Run the pipeline end to end on the built-in if_then and paradox_conclusion packs."""
    from ..demo import run_demo
    from ..stats import format_stats

    result = run_demo(out, n=n, seed=seed, echo=click.echo)
    click.echo(format_stats(result.stats))
    click.echo(f"corpus: {result.corpus}")
    sys.exit(0 if result.validation.ok else 1)
