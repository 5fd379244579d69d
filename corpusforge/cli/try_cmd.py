from __future__ import annotations

import sys

import click
import orjson

from .options import InputPath, Int, domain_errors


def _diff(runs: list[list[str]], color: bool) -> str:
    """The after-text with what changed highlighted (on a terminal) or marked [-old-]{+new+}."""
    out = []
    for op, before, after in runs:
        if op == "equal":
            out.append(after)
            continue
        if before:
            out.append(click.style(before, fg="red", strikethrough=True) if color else f"[-{before}-]")
        if after:
            out.append(click.style(after, fg="green", bold=True) if color else f"{{+{after}+}}")
    return " ".join(p for p in out if p)


def _show(row: dict, color: bool) -> None:
    click.echo(click.style(repr(row["prompt"]), bold=True) if color else repr(row["prompt"]))
    tops = zip(row["top_before"], row["top_after"])
    click.echo("  next token   before → after: " + ";  ".join(
        f"{b['token']!r} {b['p']:.3f} → {a['token']!r} {a['p']:.3f}" for b, a in tops))
    if "target" in row:
        b, a = row["target_before"], row["target_after"]
        click.echo(f"  target {row['target']!r}: p {b['p']:.4f} → {a['p']:.4f}, rank {b['rank']} → {a['rank']}")
    for kind in ("greedy", "sampled"):
        click.echo(f"  {kind:<7} before: {row[f'{kind}_before']!r}")
        click.echo(f"  {kind:<7} after:  {_diff(row[f'{kind}_diff'], color)}")


@click.command("try")
@click.argument("prompts", nargs=-1)
@click.option("--adapter", required=True, type=InputPath("folder"), help="The peft adapter folder.")
@click.option("--model", help="The base model (default: the one in the adapter's run.json).")
@click.option("--file", "prompts_file", type=InputPath("file"), help="More prompts, one per line (or JSONL).")
@click.option("--target", help='A continuation to score before and after, e.g. " движение".')
@click.option("--chat", is_flag=True, help="Put each prompt in the model's chat template as the user's turn.")
@click.option("--top", type=Int(1, 50), default=5, show_default=True, help="Next tokens to show.")
@click.option("--max-new-tokens", type=Int(1, 512), default=24, show_default=True)
@click.option("--seed", type=Int(), default=0, show_default=True, help="Seed of the sampled continuation.")
@click.option("--device", default="auto", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@domain_errors
def command(prompts, adapter, model, prompts_file, target, chat, top, max_new_tokens, seed, device, fmt) -> None:
    """Try an adapter on your own prompts: next tokens, continuations and a target, before → after.

    \b
    Examples:
      corpusforge try --adapter my-adapter "Смысл — это" --target " движение"
      corpusforge try --adapter my-adapter "If the lake freezes," "The meeting is" --format json
      corpusforge try --adapter my-adapter --file prompts.txt --chat
    """
    from ..prompts import read_prompts
    from ..shift.trial import TrialConfig, try_adapter

    texts = list(prompts) + ([p["prompt"] for p in read_prompts(prompts_file, unique=False)] if prompts_file else [])
    cfg = TrialConfig(top=top, max_new_tokens=max_new_tokens, seed=seed, chat=chat, device=device)
    rows = try_adapter(adapter, texts, model=model, target=target, cfg=cfg,
                       echo=(lambda s: click.echo(s, err=True)) if fmt == "text" else (lambda s: None))
    if fmt == "json":
        click.echo(orjson.dumps(rows).decode())
        return
    color = sys.stdout.isatty()
    for row in rows:
        _show(row, color)
