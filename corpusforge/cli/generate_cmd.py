from __future__ import annotations

import click

from ..generate.config import GenerateConfig
from ..write.run import WriteConfig
from ..write.writers import ENGINES
from .options import Int, config_option, domain_errors, parse_shard, parse_weights, templates_option

#: options that only a model-written corpus takes, and those only a template corpus takes
WRITER_ONLY = ("temperature", "top_p", "min_words", "max_words", "max_new_tokens", "batch_size", "concurrency",
               "cache", "offline", "min_distinct_2", "max_near_dup", "prompts", "engine")
TEMPLATE_ONLY = ("workers", "format", "continuations", "resume")


def _writer_options(command):
    """The options of a model-written corpus (``--writer``), from ``WriteConfig``'s fields."""
    unit = click.FloatRange(0, 1)
    for field, kind in reversed([("temperature", click.FloatRange(0, 5, min_open=True)),
                                 ("top_p", click.FloatRange(0, 1, min_open=True)),
                                 ("min_words", Int(1, 200)), ("max_words", Int(1, 200)),
                                 ("max_new_tokens", Int(1, 4096)), ("batch_size", Int(1, 4096)),
                                 ("concurrency", Int(1, 256)),
                                 ("cache", click.Path(file_okay=False)), ("offline", None),
                                 ("min_distinct_2", unit), ("max_near_dup", unit),
                                 ("prompts", click.STRING), ("engine", click.Choice(ENGINES))]):
        extra = {"is_flag": True} if kind is None else {"type": kind}
        command = config_option(WriteConfig, field, **extra)(command)
    return config_option(WriteConfig, "writer", metavar="SPEC")(command)


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
@_writer_options
@domain_errors
def command(templates, mix, out, shard, splits, progress, template_paths, writer, **given) -> None:
    """Render a corpus from templates — or, with --writer, have a model write the words the templates leave
    open: deterministic, deduplicated, split by premise.

    \b
    Examples:
      corpusforge generate --template if_then.en --n 3000 --out my-corpus
      corpusforge generate --mix if_then.en=2,if_then.ru=1 --n 100000 --workers 2 --out big
      corpusforge generate --template silence.ru --n 1000 --shard 0/4 --out part-0
      corpusforge generate --writer embedded --mix if_then.en=1,if_then.ru=1 --n 200 --out written
      corpusforge generate --writer embedded --prompts pool --mix if_then.en=1,if_then.ru=1 --n 200 --out answers
      corpusforge generate --writer openai:http://127.0.0.1:8000#my-model --template if_then.en --n 50000 \
          --concurrency 16 --out big-written
    """
    if not templates and not mix:
        raise click.UsageError("give --template NAME (repeatable) or --mix NAME=W,...")
    if templates and mix:
        raise click.UsageError("give either --template or --mix, not both")
    values = {k: v for k, v in given.items() if v is not None}
    if splits is not None:
        values["splits"] = parse_weights(splits, "--split")
    wrong = [k for k in (TEMPLATE_ONLY + ("shard",) if writer else WRITER_ONLY)
             if values.get(k) or (k == "shard" and shard)]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise click.UsageError(f"{flag} does not apply to a model-written corpus" if writer
                               else f"{flag} applies only to a model-written corpus: add --writer SPEC")
    if writer:
        _write(writer, templates, mix, out, template_paths, progress, values)
        return
    from ..generate import generate

    cfg = GenerateConfig(templates=list(templates), mix=parse_weights(mix, "--mix"), shard=parse_shard(shard),
                         template_paths=list(template_paths), progress=progress, **values)
    if cfg.workers > 1:
        from ..generate.pool import cores

        if cfg.workers > cores():
            click.echo(f"note: --workers {cfg.workers} is more than the {cores()} core(s) here; using at most "
                       f"{cores()}", err=True)
    try:
        result = generate(cfg, out)
    except KeyboardInterrupt:
        click.echo(f"interrupted: nothing was written under {out}; the partial run is kept — run the same command "
                   "with --resume to finish it", err=True)
        raise SystemExit(130) from None
    splits = ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items()))
    click.echo(f"wrote {result.records:,} records to {result.path} ({splits})")


def _write(writer, templates, mix, out, template_paths, progress, values) -> None:
    from ..write import WriteConfig, write_corpus

    cfg = WriteConfig(writer=writer, templates=list(templates), mix=parse_weights(mix, "--mix"),
                      template_paths=list(template_paths), progress=progress, **values)
    result = write_corpus(cfg, out)
    t = result.tally
    refused = ", ".join(f"{n} {why}" for why, n in t.refused.most_common()) or "none"
    splits = ", ".join(f"{k} {v:,}" for k, v in sorted(result.counts.items()))
    click.echo(f"wrote {result.records:,} model-written records to {result.path} ({splits}); answers: "
               f"{t.asked:,} asked, {t.cached:,} from the cache; refused: {refused}")
