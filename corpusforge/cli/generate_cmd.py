from __future__ import annotations

import click

from . import domain_errors
from .options import parse_shard, parse_weights, templates_option


@click.command("generate")
@click.option("--template", "templates", multiple=True, metavar="NAME",
              help="A template name (or a .yaml path); repeat for an equal mix.")
@click.option("--mix", help="Weighted mix instead of --template: NAME=W,NAME=W,...")
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True, help="Records to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="The generation seed.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The corpus folder to write.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes drawing records; the output is the same for any number.")
@click.option("--shard", help="Write only part i of N (0-based, e.g. 0/4); the parts concatenate to the whole.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("--continuations", type=click.IntRange(min=1), default=1, show_default=True,
              help="Different continuations per premise (they share premise_id).")
@click.option("--split", "split", default="train=0.9,validation=0.05,test=0.05", show_default=True,
              help="Split shares; assigned by hashing the premise.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run of the same command.")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus folder (only once the new one is done).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@templates_option
@domain_errors
def command(templates, mix, n, seed, out, workers, shard, fmt, continuations, split, resume, overwrite, progress,
            template_paths) -> None:
    """Render a corpus from templates: deterministic, deduplicated, split by premise."""
    from ..generate import GenerateConfig, generate

    if not templates and not mix:
        raise click.UsageError("give --template NAME (repeatable) or --mix NAME=W,...")
    if templates and mix:
        raise click.UsageError("give either --template or --mix, not both")
    cfg = GenerateConfig(templates=list(templates), mix=parse_weights(mix, "--mix"), n=n, seed=seed,
                         continuations=continuations, splits=parse_weights(split, "--split"), format=fmt,
                         shard=parse_shard(shard), workers=workers, resume=resume, overwrite=overwrite,
                         template_paths=list(template_paths), progress=progress)
    try:
        result = generate(cfg, out)
    except KeyboardInterrupt:
        click.echo(f"interrupted: nothing was written under {out}; the partial run is kept — run the same command "
                   "with --resume to finish it", err=True)
        raise SystemExit(130) from None
    splits = ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items()))
    click.echo(f"wrote {result.records:,} records to {result.path} ({splits})")
