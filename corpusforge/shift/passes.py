"""Forward passes the report's measures share: a probe's tokens, log-probabilities at chosen positions in
batched passes, continuations scored as a whole, and the distances between next-token distributions.

While ``measuring``, passes over a batch seen before start at the adapter's first layer and the output head runs
only at the positions scored (each checked on the model first); ``ReportConfig.whole_passes`` turns that off.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from ..lm.arch import Architecture, check_entry, check_head, describe, entered_at, head_logits, layer_input
from ..lm.chat import user_turn
from ..lm.generation import cache_argument, lora_layers, padded, projection_map
from ..lm.tokens import piece_ids, text_ids


def encode(tok, text: str) -> list[int]:
    """A prompt, control or probe: a text the model reads from its start (its tokenizer's ``<bos>``, if any)."""
    return text_ids(tok, text)


def piece(tok, text: str) -> list[int]:
    """A target or marker: a piece that follows the prompt, its own tokens only."""
    return piece_ids(tok, text)


def probe_text(tok, probe) -> str:
    """What the model sees of a probe: its prompt, or — for a chat probe — the prompt as the user's turn in the
    model's chat template, with the assistant's answer begun by ``prefix`` (if any)."""
    if not getattr(probe, "chat", False):
        return probe.prompt
    if not getattr(tok, "chat_template", None):
        from ..errors import ReportError

        raise ReportError("a chat probe needs a tokenizer with a chat template; this model's has none")
    return user_turn(tok, probe.prompt, answer_start=probe.prefix)


def probe_ids(tok, probe) -> list[int]:
    return encode(tok, probe_text(tok, probe))


def token_labels(tok, ids: list[int], *, most: int = 4) -> list[str]:
    """A readable label per position: a byte-level tokenizer splits a character outside its merges (Cyrillic,
    an emoji) into byte pieces that decode alone to "\ufffd"; such a run is labelled once, at its first
    position, with the text it decodes to together (up to ``most`` pieces), and "·" at the others."""
    labels, i = [], 0
    while i < len(ids):
        end = i + 1
        while "\ufffd" in tok.decode(ids[i:end]) and end < len(ids) and end - i < most:
            end += 1
        if "\ufffd" in tok.decode(ids[i:end]):   # not a split character after all: each piece as it decodes
            end = i + 1
        labels += [tok.decode(ids[i:end])] + ["·"] * (end - i - 1)
        i = end
    return labels


def as_input(model, ids: list[int]):
    """A batch of one sequence on the model's device: (1, seq)."""
    import torch

    return torch.tensor([ids], device=model.device)


def next_logprobs(model, ids: list[int]):
    """Log-probabilities of the next token after ``ids``: (vocab,)."""
    return last_logprobs(model, [ids])[0]


def logprob_rows(model, id_lists: list[list[int]], *, batch_size: int = 16, starts: list[int] | None = None):
    """Log-probabilities at the positions of each sequence from ``starts[i]`` (default 0) to its end,
    ``batch_size`` sequences per forward pass, padded on the right (a causal model's positions never see what
    follows them, so padding changes nothing before it): yields one (len - start, vocab) tensor per sequence, in
    order. While ``measuring``, the head runs only at those positions."""
    import torch
    import torch.nn.functional as F

    kept = _KEPT.get(model)
    starts = starts or [0] * len(id_lists)
    for at in range(0, len(id_lists), batch_size):
        chunk = id_lists[at:at + batch_size]
        spans = [(first, len(ids)) for first, ids in zip(starts[at:at + batch_size], chunk)]
        input_ids, mask = padded(model, chunk, 0, left=False)
        with torch.no_grad():
            rows = _logits(model, input_ids, mask, spans, kept, tuple(map(tuple, chunk)))
        for logits in rows:
            yield F.log_softmax(logits.float(), dim=-1)


def prefixed_rows(model, prefix: list[int], id_lists: list[list[int]], starts: list[int], *, batch_size: int = 16):
    """``logprob_rows`` over ``prefix + ids`` for each of ``id_lists``, with the prefix's keys and values computed
    once and shared by every sequence (k examples before each prompt cost one pass, not one a prompt).
    ``starts[i]`` is a position within ``id_lists[i]`` (the rows from there predict its following tokens), so
    each sequence holds at least one token. The head runs over the sequences' own positions only."""
    import copy

    import torch
    import torch.nn.functional as F

    name = cache_argument(model)
    with torch.no_grad():
        cache = model(input_ids=torch.tensor([prefix], device=model.device), use_cache=True).past_key_values
        for at in range(0, len(id_lists), batch_size):
            chunk, firsts = id_lists[at:at + batch_size], starts[at:at + batch_size]
            input_ids, mask = padded(model, chunk, 0, left=False)
            shared = copy.deepcopy(cache)
            shared.batch_repeat_interleave(len(chunk))
            ones = torch.ones((len(chunk), len(prefix)), dtype=mask.dtype, device=mask.device)
            positions = torch.arange(len(prefix), len(prefix) + input_ids.shape[1], device=input_ids.device)
            logits = model(input_ids=input_ids, attention_mask=torch.cat([ones, mask], dim=1), **{name: shared},
                           position_ids=positions.expand(len(chunk), -1), use_cache=True).logits
            for i, (ids, first) in enumerate(zip(chunk, firsts)):
                yield F.log_softmax(logits[i, first:len(ids)].float(), dim=-1)


@dataclass
class _Kept:
    """While ``measuring``: the adapter's first layer, where a pass over a batch seen before starts (None: none
    does), each batch's inputs to it from its first pass, and whether the output head alone reproduces the
    model's logits (so that it runs only where log-probabilities are asked for)."""

    arch: Architecture
    layer: int | None
    head: bool
    inputs: dict
    room: int = 1 << 28   # bytes left for kept inputs (256 MiB; SmolLM2's report keeps a few MB)


_KEPT: WeakKeyDictionary = WeakKeyDictionary()   # model → _Kept, while ``measuring``


@contextmanager
def measuring(model, check_ids: list[int], *, enter: bool = True):
    """Within: a forward pass over a batch already seen starts at the adapter's first layer, from the inputs
    that layer got the first time — below that layer nothing a report measures differs (adapter scale, random
    direction, one family of modules), so the first half of a ``last-half`` model runs once per batch instead of
    once per measure — and the output head runs only at the positions asked for. Each is checked on
    ``check_ids`` first (``lm.arch.check_entry``, ``check_head``); where one does not hold, passes run whole.
    ``enter=False`` keeps only the head at the asked positions: for edits below the adapter's first layer (a
    steering vector, examples before the prompt)."""
    arch = describe(model)
    where = projection_map(model)
    adapted = [name for name, _ in lora_layers(model)]
    first = min((where[name].layer for name in adapted), default=0) if all(n in where for n in adapted) else 0
    ids = as_input(model, check_ids)
    # a LoRA outside the layers (embeddings, head): no entry at all
    layer = first if enter and first > 0 and check_entry(model, arch, first, ids) else None
    _KEPT[model] = _Kept(arch, layer, check_head(model, arch, ids)[0], {})
    try:
        yield
    finally:
        _KEPT.pop(model, None)


def _logits(model, input_ids, mask, spans: list[tuple[int, int]], kept: _Kept | None, key: tuple) -> list:
    """The logits over a padded batch at each row's span of positions [first, end): a (end - first, vocab)
    tensor per row — entered at the kept layer when ``key`` was seen before, the head only on the spans when it
    checks out."""
    import torch

    if kept is None:
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        return [logits[i, a:b] for i, (a, b) in enumerate(spans)]
    entered = kept.layer is not None and key in kept.inputs
    with entered_at(model, kept.arch, kept.layer, kept.inputs[key]) if entered else \
            layer_input(model, kept.arch, kept.layer) if kept.layer is not None else nullcontext({}) as seen:
        if kept.head:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            hidden = base.base_model(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            rows = torch.cat([torch.full((b - a,), i) for i, (a, b) in enumerate(spans)]).to(hidden.device)
            cols = torch.cat([torch.arange(a, b) for a, b in spans]).to(hidden.device)
            out = list(head_logits(model, kept.arch, hidden[rows, cols]).split([b - a for a, b in spans]))
        else:
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            out = [logits[i, a:b] for i, (a, b) in enumerate(spans)]
    if kept.layer is not None and not entered and kept.room >= seen["hidden"].nbytes:
        kept.inputs[key] = seen["hidden"]
        kept.room -= seen["hidden"].nbytes
    return out


def score_continuations(model, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, int, bool]]:
    """Each (prompt, continuation) pair scored as ``continuation_scores`` does, in batched forward passes."""
    out = []
    rows = logprob_rows(model, [p + c for p, c in pairs], starts=[len(p) - 1 for p, _ in pairs])
    for (_, cont_ids), logp in zip(pairs, rows):   # row i: the position predicting the continuation's i-th token
        total = sum(float(logp[i, t]) for i, t in enumerate(cont_ids))
        rank = int((logp[0] > logp[0, cont_ids[0]]).sum()) + 1
        greedy = all(int(logp[i].argmax()) == t for i, t in enumerate(cont_ids))
        out.append((total, rank, greedy))
    return out


def continuation_scores(model, prompt_ids: list[int], cont_ids: list[int]) -> tuple[float, int, bool]:
    """A multi-token continuation as a whole: the sum of log p over its tokens (p of the whole = the product),
    the rank of its first token, and whether greedy decoding writes all of it (each token the argmax in turn)."""
    return score_continuations(model, [(prompt_ids, cont_ids)])[0]


def continuation_logprob(model, prompt_ids: list[int], cont_ids: list[int]) -> tuple[float, int]:
    """Sum of log p over the continuation's tokens, and the rank of its first token."""
    total, rank, _ = continuation_scores(model, prompt_ids, cont_ids)
    return total, rank


def last_logprobs(model, id_lists: list[list[int]]) -> list:
    """Log-probabilities of the next token after each sequence: a (vocab,) tensor each, batched."""
    return [logp[-1] for logp in logprob_rows(model, id_lists, starts=[len(ids) - 1 for ids in id_lists])]


def kl(p_log, q_log) -> float:
    """KL(p ‖ q) in nats, from log-probabilities."""
    return float((p_log.exp() * (p_log - q_log)).sum())


def js(p_log, q_log) -> float:
    import torch

    m = torch.logaddexp(p_log, q_log) - math.log(2)
    return 0.5 * kl(p_log, m) + 0.5 * kl(q_log, m)


def entropy(p_log) -> float:
    return float(-(p_log.exp() * p_log).sum())
