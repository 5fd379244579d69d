from __future__ import annotations

import click

from ..generate.config import GenerateConfig
from .options import Int, config_option, domain_errors, parse_shard, parse_weights, templates_option


@click.command("generate")
@click.option("--template", "templates", multiple=True, metavar="NAME",
              help="A template name (or a .yaml path); repeat for an equal mix.")
@click.option("--mix", help="Weighted mix instead of --template: NAME=W,NAME=W,...")
@config_option(GenerateConfig, "n", "--n", type=Int(1))
@config_option(GenerateConfig, "seed", type=Int())
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The corpus folder to write.")
@config_option(GenerateConfig, "workers", type=Int(1))
@click.option("--shard", help="Write only part i of N (0-based, e.g. 0/4); the parts concatenate to the whole.")
@config_option(GenerateConfig, "format", "--format", type=click.Choice(["jsonl", "parquet"]))
@config_option(GenerateConfig, "continuations", type=Int(1))
@config_option(GenerateConfig, "splits", "--split", metavar="NAME=SHARE,...")
@config_option(GenerateConfig, "resume", "--resume", is_flag=True)
@config_option(GenerateConfig, "overwrite", "--overwrite", is_flag=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@templates_option
@domain_errors
def command(templates, mix, out, shard, splits, progress, template_paths, **given) -> None:
    """Render a corpus from templates: deterministic, deduplicated, split by premise.

    \b
    Examples:
      corpusforge generate --template if_then.en --n 3000 --out my-corpus
      corpusforge generate --mix if_then.en=2,if_then.ru=1 --n 100000 --workers 2 --out big
      corpusforge generate --template silence.ru --n 1000 --shard 0/4 --out part-0
    """
    from ..generate import generate

    if not templates and not mix:
        raise click.UsageError("give --template NAME (repeatable) or --mix NAME=W,...")
    if templates and mix:
        raise click.UsageError("give either --template or --mix, not both")
    values = {k: v for k, v in given.items() if v is not None}
    if splits is not None:
        values["splits"] = parse_weights(splits, "--split")
    cfg = GenerateConfig(templates=list(templates), mix=parse_weights(mix, "--mix"), shard=parse_shard(shard),
                         template_paths=list(template_paths), progress=progress, **values)
    try:
        result = generate(cfg, out)
    except KeyboardInterrupt:
        click.echo(f"interrupted: nothing was written under {out}; the partial run is kept — run the same command "
                   "with --resume to finish it", err=True)
        raise SystemExit(130) from None
    splits = ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items()))
    click.echo(f"wrote {result.records:,} records to {result.path} ({splits})")
