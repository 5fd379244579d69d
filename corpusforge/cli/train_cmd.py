from __future__ import annotations

import click

from ..train.config import TrainConfig
from .options import Int, config_option, domain_errors, not_blank


def _train_options(func):
    """One option per TrainConfig field a user sets from the command line (help from the field)."""
    options = [
        config_option(TrainConfig, "model"),
        config_option(TrainConfig, "rank", type=Int()),
        config_option(TrainConfig, "alpha", type=float),
        config_option(TrainConfig, "dropout", type=float),
        config_option(TrainConfig, "targets"),
        config_option(TrainConfig, "layers", callback=not_blank),
        config_option(TrainConfig, "rslora", "--rslora/--no-rslora"),
        config_option(TrainConfig, "dora", "--dora/--no-dora"),
        config_option(TrainConfig, "lr", type=float),
        config_option(TrainConfig, "steps", type=Int()),
        config_option(TrainConfig, "epochs", type=float),
        config_option(TrainConfig, "batch_size", type=Int()),
        config_option(TrainConfig, "grad_accum", type=Int()),
        config_option(TrainConfig, "max_length", type=Int()),
        config_option(TrainConfig, "warmup", type=Int()),
        config_option(TrainConfig, "seed", type=Int()),
        config_option(TrainConfig, "loss_on", callback=not_blank),
        config_option(TrainConfig, "controls", type=click.Path()),
        config_option(TrainConfig, "control_weight", type=float),
        config_option(TrainConfig, "premise_weight", type=float),
        config_option(TrainConfig, "target_weight", type=float),
        config_option(TrainConfig, "eval_every", type=Int()),
        config_option(TrainConfig, "early_stopping", type=Int()),
        config_option(TrainConfig, "checkpoint_every", type=Int()),
        config_option(TrainConfig, "format", "--format", type=click.Choice(["text", "chat", "answer"])),
        config_option(TrainConfig, "end_of_text", "--end-of-text/--no-end-of-text"),
        config_option(TrainConfig, "system"),
        config_option(TrainConfig, "device"),
        config_option(TrainConfig, "dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"])),
        config_option(TrainConfig, "gradient_checkpointing", "--gradient-checkpointing/--no-gradient-checkpointing"),
        config_option(TrainConfig, "load_in_4bit", "--load-in-4bit/--no-load-in-4bit"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("train")
@click.argument("corpus", type=click.Path(file_okay=False), required=False)
@click.option("--out", type=click.Path(), help="The adapter folder to write.")
@click.option("--config", "config_file", type=click.Path(), help="YAML file with these options (keys as in "
              "TrainConfig, e.g. batch_size); flags win.")
@_train_options
@click.option("--no-controls", is_flag=True, help="Train without the KL penalty on control prompts.")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Allow a model's own code from its repository.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run of the same configuration.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--dry-run", is_flag=True, help="Print what --targets and --layers resolve to on --model, layer by "
              "layer, and the trainable parameters; train nothing (CORPUS and --out not needed).")
@domain_errors
def command(corpus, out, config_file, no_controls, trust_remote_code, resume, overwrite, progress, dry_run,
            **flags) -> None:
    """Fit a LoRA on CORPUS and write a peft adapter folder with run.json and metrics.jsonl.

    \b
    Examples:
      corpusforge train my-corpus --out my-adapter
      corpusforge train my-corpus --out a2 --targets attention --layers last:10 --epochs 2
      corpusforge train my-corpus --out a3 --config train.yaml --lr 5e-4
      corpusforge train --model ./my-gpt2 --targets attention --layers last:4 --dry-run
      corpusforge train my-corpus --out a4 --model ./qwen --device cuda --dtype bfloat16 --gradient-checkpointing
    """
    from ..train.loop import load_config, lora_settings, train

    cfg = load_config(config_file, **flags, use_controls=False if no_controls else None,
                      trust_remote_code=trust_remote_code or None)
    if dry_run:
        from ..train.prepare import plan

        click.echo(plan(cfg, lora_settings(cfg), echo=click.echo))
        return
    if corpus is None or out is None:
        raise click.UsageError("give CORPUS and --out (or --dry-run to see what would be trained)")
    result = train(corpus, out, cfg, resume=resume, overwrite=overwrite, echo=click.echo, progress=progress)
    if result.run is None:  # another process of a distributed run: the main one reports
        return
    click.echo(f"wrote {result.out}: {result.steps} steps, {result.tokens:,} tokens "
               f"({result.supervised_tokens:,} supervised), {result.tokens_per_second:,.0f} tokens/s, "
               f"final loss {result.final_loss:.4f}")
