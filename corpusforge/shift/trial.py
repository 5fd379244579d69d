"""``corpusforge try``: an adapter on your own sentences, before and after, with one model load and no files.

For each prompt: the top next tokens with the adapter off and on, the greedy and a
seeded sampled continuation before and after (with a word diff), and — given
``target`` — that continuation's probability (the product over its tokens) and
its first token's rank, before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ReportError
from ..lm.adapter import check_adapter
from ..lm.chat import user_turn
from ..lm.device import choose
from ..lm.generation import adapter_scale
from . import passes, structure
from .build import Inputs, _nonfinite, load_with_adapter
from .probes import Probe


@dataclass
class TrialConfig:
    top: int = 5                  # next tokens shown
    max_new_tokens: int = 24
    seed: int = 0
    temperature: float = 0.8
    chat: bool = False            # wrap each prompt in the model's chat template (as the user's turn)
    device: str = "auto"
    dtype: str = "auto"


def _top_tokens(tok, logprobs, k: int) -> list[dict]:
    import torch

    values, ids = torch.topk(logprobs, k)
    return [{"token": tok.decode([int(i)]), "p": float(v.exp())} for v, i in zip(values, ids)]


def chat_prompt(tok, text: str) -> str:
    """``text`` as the user's turn in the model's chat template, ready for the assistant's answer."""
    if not getattr(tok, "chat_template", None):
        raise ReportError("this model's tokenizer has no chat template", hint="drop --chat")
    return user_turn(tok, text)


def try_one(model, tok, prompt: str, cfg: TrialConfig, target: str | None = None) -> dict:
    """Everything ``try`` shows for one prompt (the model carries the adapter; scale 0 is "before")."""
    text = chat_prompt(tok, prompt) if cfg.chat else prompt
    ids = passes.encode(tok, text)
    row: dict = {"prompt": prompt}
    texts = structure.before_after(model, tok, {"greedy": ([ids], cfg.max_new_tokens, False),
                                              "sampled": ([ids], cfg.max_new_tokens, True)},
                                 seed=cfg.seed, temperature=cfg.temperature)
    for label, scale in (("before", 0.0), ("after", 1.0)):
        row[f"greedy_{label}"], row[f"sampled_{label}"] = texts["greedy"][label][0], texts["sampled"][label][0]
        with adapter_scale(model, scale):
            row[f"top_{label}"] = _top_tokens(tok, passes.next_logprobs(model, ids), cfg.top)
            if target:
                logp, rank = passes.continuation_logprob(model, ids, passes.piece(tok, target))
                row[f"target_{label}"] = {"p": math.exp(logp), "rank": rank}
    row["greedy_diff"] = structure.word_diff(row["greedy_before"], row["greedy_after"])
    row["sampled_diff"] = structure.word_diff(row["sampled_before"], row["sampled_after"])
    if target:
        row["target"] = target
    return row


def try_adapter(adapter: str | Path, prompts: list[str], *, model: str | None = None, target: str | None = None,
                cfg: TrialConfig | None = None, echo: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Load the base model with ``adapter`` once and try every prompt."""
    from ..train.adapter_run import check_base, read_run

    cfg = cfg or TrialConfig()
    adapter = Path(adapter)
    check_adapter(adapter, ReportError)
    if not prompts:
        raise ReportError("no prompt given", hint="pass prompts as arguments or --file FILE")
    empty = [i for i, p in enumerate(prompts, 1) if not p.strip()]
    if empty:
        raise ReportError(f"prompt {empty[0]} is empty; a model continues text, so give it some",
                          hint="drop the empty argument or line")
    run = read_run(adapter, ReportError)
    base = check_base(run, model, adapter, ReportError)
    if base is None:
        raise ReportError("the adapter has no run.json naming its base model", hint="pass --model")
    inputs = Inputs(adapter, run, [Probe(prompt=p, targets=[target or " "]) for p in prompts], [], {}, None)
    peft_model, tok = load_with_adapter(base, inputs, echo, choose(cfg.device, cfg.dtype))
    return [_finite_row(try_one(peft_model, tok, p, cfg, target), adapter) for p in prompts]


def _finite_row(row: dict, adapter: Path) -> dict:
    """The row, once every probability in it is a number (NaN is never shown as one)."""
    ps = [t["p"] for label in ("before", "after") for t in row[f"top_{label}"]]
    ps += [row[f"target_{label}"]["p"] for label in ("before", "after") if f"target_{label}" in row]
    if not all(math.isfinite(p) for p in ps):
        raise _nonfinite(row["prompt"], adapter)
    return row
