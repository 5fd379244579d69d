from __future__ import annotations

import sys

import click

from .options import Int, domain_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--n", "n", type=Int(10), default=2000, show_default=True, help="Records to generate.")
@click.option("--seed", type=Int(), default=0, show_default=True)
@click.option("--no-train", is_flag=True, help="Stop after the corpus (generate, validate, stats).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")
@domain_errors
def command(out: str, n: int, seed: int, no_train: bool, progress) -> None:
    """The whole job: generate a corpus, validate it, train a LoRA on the embedded model, write the report."""
    from ..demo import demo_summary, run_demo
    from ..stats import format_stats

    result = run_demo(out, n=n, seed=seed, train_model=not no_train, echo=click.echo, progress=progress)
    click.echo(format_stats(result.stats))
    click.echo(demo_summary(result))
    sys.exit(0 if result.validation.ok else 1)
