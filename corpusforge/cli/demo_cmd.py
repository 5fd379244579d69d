from __future__ import annotations

import sys

import click

from .options import Int, domain_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--recipe", type=click.Choice(["quick", "transfer"]), default="quick", show_default=True,
              help="quick: 2,000 template records, a LoRA, the report (a few minutes). transfer: the embedded "
                   "model writes records answering the prompt pool, a LoRA learns to answer that way, and the report "
                   "measures transfer to 200 held-out prompts beside prompting (longer; see the README).")
@click.option("--n", "n", type=Int(10), default=None, help="Records to generate [quick: 2000; transfer: 600].")
@click.option("--seed", type=Int(), default=0, show_default=True)
@click.option("--model", default="smollm2-135m", show_default=True,
              help="The model the quick recipe trains and reports on: an embedded one (corpusforge models) or a "
                   "local folder.")
@click.option("--no-train", is_flag=True, help="Stop after the corpus (generate, validate, stats).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")
@domain_errors
def command(out: str, recipe: str, n: int | None, seed: int, model: str, no_train: bool, progress) -> None:
    """The whole job: make a corpus, validate it, train a LoRA on the embedded model, write the report."""
    from ..demo import demo_summary, run_demo, run_transfer_demo
    from ..stats import format_stats

    if recipe == "transfer":
        if no_train:
            raise click.UsageError("--no-train applies to the quick recipe")
        result = run_transfer_demo(out, n=n or 600, seed=seed, model=model, echo=click.echo, progress=progress)
    else:
        result = run_demo(out, n=n or 2000, seed=seed, train_model=not no_train, model=model, echo=click.echo,
                          progress=progress)
    click.echo(format_stats(result.stats))
    click.echo(demo_summary(result))
    sys.exit(0 if result.validation.ok else 1)
