"""Continuing prompts with a model and its LoRA: the adapter switched by its scale, batched ``generate`` calls
whose every row makes its own choice (greedy, or sampled from its own keyed stream), so that a text depends on
its prompt and seed alone — used by the report, the trainer's own degeneration check and the writer's peers.

No merge and no second copy: ``adapter_scale`` sets the adapter's scale on the one model, so before and after
come from the same weights; peft's mixed-adapter batches (``adapter_names``) put the base's rows beside the
adapter's in one call where the adapter allows it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

from ..draw import keyed_random
from .arch import Projection, describe
from .sampling import draw_token

PEFT_PREFIX = "base_model.model."


def lora_layers(model):
    """(name in the base model, LoRA module) for every module that carries LoRA. A LoRA on a fused parameter
    (peft's ``ParamWrapper``, one per parameter, nested when a module has two) is named by the parameter:
    ``model.layers.0.mlp.experts.gate_up_proj``, as ``lm.arch`` names the projection."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            name = name.removeprefix(PEFT_PREFIX)
            parameter = getattr(module, "parameter_name", None)
            if parameter:
                while name.endswith(".base_layer"):
                    name = name.removesuffix(".base_layer")
                name = f"{name}.{parameter}"
            yield name, module


def cache_argument(model) -> str:
    """The keyword a forward pass takes its KV cache by: transformers 5.24 names it ``cache`` (``past_key_values``
    goes in 5.40); 4.x knows only the old name."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def lora_delta(module, adapter: str):
    """One LoRA module's ΔW for one adapter, scaled: (out, in), or (experts, out, in) on fused experts."""
    return module.get_delta_weight(adapter)


def projection_map(model) -> dict[str, Projection]:
    """Every projection of the model's anatomy, by its full name (what ``lora_layers`` yields)."""
    return {p.name: p for p in describe(model).projections}


@contextmanager
def adapter_scale(model, scale: float, keep: Callable[[Projection], bool] | None = None):
    """Multiply every LoRA module's scaling by ``scale`` (modules ``keep`` refuses get 0); restore after."""
    saved = []
    where = projection_map(model) if keep is not None else {}
    for name, module in lora_layers(model):
        for adapter, value in list(module.scaling.items()):
            saved.append((module, adapter, value))
            on = keep is None or (name in where and keep(where[name]))
            module.scaling[adapter] = value * scale if on else 0.0
    try:
        yield
    finally:
        for module, adapter, value in saved:
            module.scaling[adapter] = value


# ---------------------------------------------------------------------------
# Token-level quantities


def padded(model, chunk: list[list[int]], pad: int, *, left: bool):
    """Sequences of different lengths as one batch on the model's device: (input ids, attention mask), padded
    on the left (for ``generate``, so that every prompt ends where its continuation begins) or on the right."""
    import torch

    width = max(len(ids) for ids in chunk)
    rows = [([pad] * (width - len(ids)) + ids) if left else (ids + [pad] * (width - len(ids))) for ids in chunk]
    masks = [([0] * (width - len(ids)) + [1] * len(ids)) if left else ([1] * len(ids) + [0] * (width - len(ids)))
             for ids in chunk]
    return torch.tensor(rows, device=model.device), torch.tensor(masks, device=model.device)


@dataclass(frozen=True)
class Ask:
    """One continuation to write: a prompt's ids and how many new tokens; greedy, or sampled with a random
    stream of its own (``key``: asks with one key draw the same numbers — the before and after of one prompt,
    so that an adapter that changes nothing writes the same sample); with the adapter on (True), off (False,
    the base), or as the model stands (None)."""

    ids: list[int]
    max_new_tokens: int
    sample: bool = False
    adapter: bool | None = None
    key: str = ""


def continue_asks(model, tok, asks: list[Ask], *, seed: int = 0, temperature: float = 0.8, top_p: float = 0.95,
                  batch_size: int = 64) -> list[list[int]]:
    """The new tokens of every ask, in as few ``generate`` calls as the model allows: ``batch_size`` prompts a
    call, left-padded and masked, greedy and sampled rows together, and — through peft's mixed-adapter batches —
    the adapter's rows beside the base's (where peft cannot mix them — a DoRA or merged adapter, a model whose
    LoRA modules see the rows flattened — each side gets calls of its own). On a CPU, decoding many rows at once
    costs far less than in small batches (the weights are read once per token either way; ``benchmarks/report.py``
    measures it against a call per side). Each ask's
    tokens depend on the ask alone, not on what shares its batch (its own random stream; greedy is greedy),
    and end at its end-of-sequence token."""
    settings = {"seed": seed, "temperature": temperature, "top_p": top_p, "batch_size": batch_size}
    if any(a.adapter is not None for a in asks) and _can_mix(model):
        return _generate(model, tok, asks, {None: list(range(len(asks)))}, mixed=True, **settings)
    groups: dict[bool | None, list[int]] = {}
    for i, a in enumerate(asks):
        groups.setdefault(a.adapter, []).append(i)
    return _generate(model, tok, asks, groups, mixed=False, **settings)


def _generate(model, tok, asks: list[Ask], groups: dict[bool | None, list[int]], *, mixed: bool, seed: int,
              temperature: float, top_p: float, batch_size: int) -> list[list[int]]:
    """``continue_asks`` over ``groups`` of asks (by adapter; one group when ``mixed``)."""
    import torch

    out: list[list[int]] = [[] for _ in asks]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ends = _end_ids(model, tok)
    for adapter, members in groups.items():
        members = sorted(members, key=lambda i: len(asks[i].ids))   # alike in length: less padding per batch
        with adapter_scale(model, 0.0) if adapter is False else nullcontext():
            for start in range(0, len(members), batch_size):
                rows = members[start:start + batch_size]
                chunk = [asks[i] for i in rows]
                input_ids, mask = padded(model, [a.ids for a in chunk], pad, left=True)
                options = {"adapter_names": [_adapter_name(model, a.adapter) for a in chunk]} if mixed else {}
                with torch.no_grad():
                    new = model.generate(input_ids=input_ids, attention_mask=mask, pad_token_id=pad,
                                         max_new_tokens=max(a.max_new_tokens for a in chunk), do_sample=False,
                                         logits_processor=[_Choose(chunk, seed, temperature, top_p)],
                                         **options)[:, input_ids.shape[1]:]
                for i, a, ids in zip(rows, chunk, new.tolist()):
                    out[i] = _until_end(ids[:a.max_new_tokens], ends)
    return out


def _can_mix(model) -> bool:
    """Whether peft can run this model's adapter and its base in one batch (``adapter_names``): not for a DoRA
    or merged adapter, nor where a LoRA module sees the rows flattened together (OPT's MLP does), which one
    tiny forward pass tells."""
    import torch

    layers = [module for _, module in lora_layers(model)]
    if not layers or any(m.merged or any(m.use_dora.values()) for m in layers):
        return False
    rows: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _, args, kwargs: rows.append(
        (args[0] if args else next(iter(kwargs.values()))).shape[0]), with_kwargs=True) for m in layers]
    try:
        with torch.no_grad():
            model(input_ids=torch.zeros((3, 2), dtype=torch.long, device=model.device))
    finally:
        for hook in hooks:
            hook.remove()
    return all(n == 3 for n in rows)


def _adapter_name(model, adapter: bool | None) -> str:
    return "__base__" if adapter is False else model.active_adapter


class _Choose:
    """A logits processor that makes each row's choice itself — greedy: the most likely token; sampled: a draw
    at ``temperature`` within the top-``top_p`` mass, from the row's own random stream — and leaves only that
    token, so that ``generate``'s greedy step takes it. It sees the scores after the model's own logits
    processors (repetition penalties and the like), as greedy decoding does; sampling is temperature and top-p
    alone (a generation config's top-k or min-p are not applied)."""

    def __init__(self, asks: list[Ask], seed: int, temperature: float, top_p: float):
        self.sampled = [row for row, a in enumerate(asks) if a.sample]
        self.keys = [asks[row].key for row in self.sampled]
        self.streams = {key: keyed_random(f"{seed}:{key}") for key in self.keys}
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch

        chosen = scores.argmax(dim=-1)
        if self.sampled:
            draws = {key: stream.random() for key, stream in self.streams.items()}   # one per key and step
            u = torch.tensor([draws[key] for key in self.keys], device=scores.device)
            chosen[self.sampled] = draw_token(scores[self.sampled], u, self.temperature, self.top_p)
        return torch.full_like(scores, -math.inf).scatter_(1, chosen[:, None], 0.0)


def continue_ids(model, tok, id_lists: list[list[int]], *, max_new_tokens: int, sample: bool = False,
                 seed: int = 0, temperature: float = 0.8, batch_size: int = 64) -> list[list[int]]:
    """The new tokens continuing each prompt with the model as it stands (``continue_asks``)."""
    return continue_asks(model, tok, [Ask(ids, max_new_tokens, sample, key=str(i)) for i, ids in enumerate(id_lists)],
                         seed=seed, temperature=temperature, batch_size=batch_size)


def _end_ids(model, tok) -> set[int]:
    """The token ids that end a generation: the model's generation config's and the tokenizer's."""
    ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ends = set(ends if isinstance(ends, list) else [ends] if ends is not None else [])
    return ends | ({tok.eos_token_id} if tok.eos_token_id is not None else set())


def _until_end(ids: list[int], ends: set[int]) -> list[int]:
    """``ids`` up to and including the first end token (what follows it in a batch is padding)."""
    for i, t in enumerate(ids):
        if t in ends:
            return ids[:i + 1]
    return ids
