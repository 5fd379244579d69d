from __future__ import annotations

import click

from . import domain_errors


def _opt(*names, **kw):
    kw.setdefault("default", None)
    return click.option(*names, **kw)


@click.command("train")
@click.argument("corpus", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="The adapter folder to write.")
@_opt("--model", help="Embedded name (smollm2-135m, the default), a local folder, or a Hub id.")
@_opt("--config", "config_file", type=click.Path(), help="YAML file with these options; flags win.")
@_opt("--rank", type=int, help="LoRA rank (default 8).")
@_opt("--alpha", type=float, help="LoRA alpha (default 16).")
@_opt("--dropout", type=float, help="LoRA dropout (default 0).")
@_opt("--targets", help="attention | attention+mlp (default) | mlp | module names, e.g. q,v,gate.")
@_opt("--layers", help="Layers to adapt: 20-29, last:10, last-half (default) or all.")
@_opt("--rslora/--no-rslora", "rslora", help="Rank-stabilised LoRA scaling.")
@_opt("--dora/--no-dora", "dora", help="Weight-decomposed LoRA (DoRA).")
@_opt("--lr", type=float, help="Learning rate (default 8e-4).")
@_opt("--steps", type=int, help="Optimiser steps (default 50).")
@_opt("--epochs", type=float, help="Epochs instead of --steps.")
@_opt("--batch-size", type=int, help="Records per micro-step per process (default 8).")
@_opt("--grad-accum", type=int, help="Micro-steps per optimiser step (default 1).")
@_opt("--max-length", type=int, help="Tokens per record (default 128).")
@_opt("--warmup", type=int, help="Warm-up steps (default 4).")
@_opt("--seed", type=int, help="Seed (default 0).")
@_opt("--loss-on", help="Roles with loss, e.g. consequence,conclusion (default: every role after the first).")
@_opt("--controls", type=click.Path(), help="Control prompts (text or JSONL); default: the shipped set.")
@click.option("--no-controls", is_flag=True, help="Train without the KL penalty on control prompts.")
@_opt("--control-weight", type=float, help="Weight of the control KL (default 100).")
@_opt("--eval-every", type=int, help="Validation loss every N steps (default 20).")
@_opt("--early-stopping", type=int, help="Stop after N evaluations without improvement.")
@_opt("--checkpoint-every", type=int, help="Checkpoint every N steps (default 20).")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model's own code from its repository.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run of the same configuration.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@domain_errors
def command(corpus, out, config_file, no_controls, trust_remote_code, resume, overwrite, progress, **flags) -> None:
    """Fit a LoRA on CORPUS and write a peft adapter folder with run.json and metrics.jsonl."""
    from ..train.loop import TrainConfig, config_from_file, train

    values = config_from_file(config_file) if config_file else {}
    for key, value in flags.items():
        if value is not None:
            values[key] = value
    if values.get("loss_on") and isinstance(values["loss_on"], str):
        values["loss_on"] = [r.strip() for r in values["loss_on"].split(",") if r.strip()]
    if no_controls:
        values["use_controls"] = False
    if trust_remote_code:
        values["trust_remote_code"] = True
    if "epochs" in values and "steps" not in values:
        values["steps"] = None
    result = train(corpus, out, TrainConfig(**values), resume=resume, overwrite=overwrite, echo=click.echo,
                   progress=progress)
    if not result.run:  # another process of a distributed run: the main one reports
        return
    click.echo(f"wrote {result.out}: {result.steps} steps, {result.tokens:,} tokens "
               f"({result.supervised_tokens:,} supervised), {result.tokens_per_second:,.0f} tokens/s, "
               f"final loss {result.final_loss:.4f}")
