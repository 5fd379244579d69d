"""Measurements of one model with its LoRA: "before" is the adapter off (scale 0), "after" is it on.

No merge and no second copy: the adapter's scale is set on the one model
(``adapter_scale``), so before, after, dose–response and the noise floor all
come from the same weights.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from ..lm.arch import (
    Architecture,
    check_entry,
    check_head,
    describe,
    entered_at,
    head_logits,
    layer_input,
    lens_logits,
)
from ..lm.chat import user_turn
from ..lm.generation import (  # noqa: F401  (Ask, continue_asks, continue_ids: the report's modules use them here)
    Ask,
    adapter_scale,
    continue_asks,
    continue_ids,
    lora_layers,
    padded,
    projection_map,
)
from ..prompts import prompt_language


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False).input_ids


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


def as_input(model, ids: list[int]):
    """A batch of one sequence on the model's device: (1, seq)."""
    import torch

    return torch.tensor([ids], device=model.device)


def before_after(model, tok, wanted: dict[str, tuple[list[list[int]], int, bool]], *, seed: int = 0,
                 temperature: float = 0.8) -> dict[str, dict[str, list[str]]]:
    """Every prompt of every kind continued with the adapter off and on, all in one ``continue_asks``: ``wanted``
    maps a kind to (prompts' ids, new tokens, sampled?); returns kind → {"before": texts, "after": texts}.
    A prompt's sampled before and after share their random draws."""
    asks, where = [], []
    for kind, (id_lists, max_new_tokens, sample) in wanted.items():
        for i, ids in enumerate(id_lists):
            for label in ("before", "after"):
                asks.append(Ask(ids, max_new_tokens, sample, adapter=label == "after", key=f"{kind}:{i}"))
                where.append((kind, label))
    texts: dict[str, dict[str, list[str]]] = {kind: {"before": [], "after": []} for kind in wanted}
    for (kind, label), ids in zip(where, continue_asks(model, tok, asks, seed=seed, temperature=temperature)):
        texts[kind][label].append(tok.decode(ids, skip_special_tokens=True))
    return texts


def word_diff(before: str, after: str) -> list[list[str]]:
    """[op, before words, after words] runs, as difflib's opcodes over words."""
    import difflib

    b, a = before.split(" "), after.split(" ")
    return [[op, " ".join(b[i1:i2]), " ".join(a[j1:j2])]
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b, b=a).get_opcodes()]


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
def measuring(model, check_ids: list[int]):
    """Within: a forward pass over a batch already seen starts at the adapter's first layer, from the inputs
    that layer got the first time — below that layer nothing a report measures differs (adapter scale, random
    direction, one family of modules), so the first half of a ``last-half`` model runs once per batch instead of
    once per measure — and the output head runs only at the positions asked for. Each is checked on
    ``check_ids`` first (``lm.arch.check_entry``, ``check_head``); where one does not hold, passes run whole."""
    arch = describe(model)
    where = projection_map(model)
    adapted = [name for name, _ in lora_layers(model)]
    first = min((where[name].layer for name in adapted), default=0) if all(n in where for n in adapted) else 0
    ids = as_input(model, check_ids)
    layer = first if first > 0 and check_entry(model, arch, first, ids) else None   # a LoRA outside the layers
    #                                                                        (embeddings, head): no entry at all
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


# ---------------------------------------------------------------------------
# Probes and controls


def target_logps(model, tok, probes, *, scale: float = 1.0, keep=None) -> list[dict]:
    """Per probe × target at one adapter scale: log-prob and rank of the target, log-probs of the foils."""
    pairs, layout = [], []
    for probe in probes:
        prompt = probe_ids(tok, probe)
        pairs += [(prompt, encode(tok, text)) for text in [*probe.foils, *probe.targets]]
        layout.append((len(probe.foils), len(probe.targets)))
    with adapter_scale(model, scale, keep=keep):
        scores = score_continuations(model, pairs)
    out, at = [], 0
    for n_foils, n_targets in layout:
        foils = [scores[at + j][0] for j in range(n_foils)]
        for j in range(at + n_foils, at + n_foils + n_targets):
            logp, rank, greedy = scores[j]
            out.append({"logp": logp, "rank": rank, "greedy": greedy, "foils": foils, "tokens": len(pairs[j][1])})
        at += n_foils + n_targets
    return out


def probe_rows(model, tok, probes, *, scale: float = 1.0, before: list[dict] | None = None, keep=None) -> list[dict]:
    """For every probe × target: log-prob, probability and rank before (scale 0) and at ``scale``."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    after = target_logps(model, tok, probes, scale=scale, keep=keep)
    pairs = [(probe, target) for probe in probes for target in probe.targets]
    rows = []
    for (probe, target), b, a in zip(pairs, before, after):
        row = {"name": probe.name, "prompt": probe.prompt, "chat": probe.chat, "prefix": probe.prefix,
               "target": target, "target_tokens": a["tokens"],
               "logp_before": b["logp"], "logp_after": a["logp"], "delta_logp": a["logp"] - b["logp"],
               "p_before": math.exp(b["logp"]), "p_after": math.exp(a["logp"]), "rank_before": b["rank"],
               "rank_after": a["rank"], "greedy_before": b["greedy"], "greedy_after": a["greedy"]}
        if probe.foils:
            row["margin_before"] = b["logp"] - max(b["foils"])
            row["margin_after"] = a["logp"] - max(a["foils"])
        rows.append(row)
    return rows


def control_base(model, tok, prompts: list[dict]) -> list:
    """The base model's next-token log-probabilities after each control prompt (the adapter at scale 0), to be
    computed once and handed to every ``control_rows`` call of a report."""
    with adapter_scale(model, 0.0):
        return last_logprobs(model, [encode(tok, c["prompt"]) for c in prompts])


def control_rows(model, tok, prompts: list[dict], *, scale: float = 1.0, continuation: int = 8,
                 base: list | None = None) -> list[dict]:
    """Drift on controls: next-token KL(base ‖ LoRA), JS, top-1 kept, Δentropy; KL over a greedy continuation.
    ``base``: the prompts' ``control_base``, when already known."""
    id_lists = [encode(tok, c["prompt"]) for c in prompts]
    bases = base if base is not None else control_base(model, tok, prompts)
    with adapter_scale(model, scale):
        afters = last_logprobs(model, id_lists)
    seq_kls = _continuation_kls(model, tok, id_lists, scale, continuation) if continuation else [[]] * len(prompts)
    rows = []
    for c, base, after, seq_kl in zip(prompts, bases, afters, seq_kls):
        rows.append({"prompt": c["prompt"], "kind": c.get("kind", ""), "kl": kl(base, after), "js": js(base, after),
                     "top1_kept": bool(int(base.argmax()) == int(after.argmax())),
                     "top1_before": tok.decode([int(base.argmax())]), "top1_after": tok.decode([int(after.argmax())]),
                     "delta_entropy": entropy(after) - entropy(base),
                     "kl_continuation": sum(seq_kl) / len(seq_kl) if seq_kl else 0.0})
    return rows


def _continuation_kls(model, tok, id_lists: list[list[int]], scale: float, length: int,
                      chunk: int = 16) -> list[list[float]]:
    """Per prompt: KL(base ‖ LoRA) along the base model's own greedy continuation, position by position
    (``chunk`` prompts at a time, so memory stays bounded however many controls there are)."""
    out = []
    for start in range(0, len(id_lists), chunk):
        prompts = id_lists[start:start + chunk]
        with adapter_scale(model, 0.0):
            fulls = [ids + new for ids, new in zip(prompts, continue_ids(model, tok, prompts, max_new_tokens=length))]
            starts = [len(ids) - 1 for ids in prompts]     # the positions predicting the continuation
            bases = list(logprob_rows(model, fulls, starts=starts))
        with adapter_scale(model, scale):
            afters = list(logprob_rows(model, fulls, starts=starts))
        out += [[kl(lb[t], la[t]) for t in range(len(full) - len(ids))]
                for ids, full, lb, la in zip(prompts, fulls, bases, afters)]
    return out


def logits_diff(model, tok, probes, *, top: int = 12) -> dict:
    """Tokens that gained and lost the most log-probability, per probe and over all probes."""
    id_lists = [probe_ids(tok, probe) for probe in probes]
    with adapter_scale(model, 0.0):
        befores = last_logprobs(model, id_lists)
    afters = last_logprobs(model, id_lists)
    per_probe, total = [], None
    for before, after in zip(befores, afters):
        delta = after - before
        total = delta if total is None else total + delta
        per_probe.append(_top_moves(tok, delta, after, before, top))
    mean = total / max(len(probes), 1)
    return {"per_probe": per_probe, "overall": _top_moves(tok, mean, None, None, top)} if total is not None else {}


def _top_moves(tok, delta, after, before, top: int) -> dict:
    import torch

    def rows(idx):
        out = []
        for i in idx.tolist():
            row = {"token": tok.decode([i]), "delta_logp": float(delta[i])}
            if after is not None:
                row.update(p_before=float(before[i].exp()), p_after=float(after[i].exp()))
            out.append(row)
        return out

    return {"gained": rows(torch.topk(delta, top).indices), "lost": rows(torch.topk(-delta, top).indices)}


# ---------------------------------------------------------------------------
# Where the LoRA sits, and which part carried the shift


def _relative(delta, module) -> float | None:
    """‖ΔW‖_F / ‖W‖_F, or None where the base weight is quantized and cannot be read back."""
    w = module.get_base_layer().weight
    if not w.dtype.is_floating_point:
        try:
            from peft.utils.integrations import dequantize_module_weight

            w = dequantize_module_weight(module.get_base_layer())
        except Exception:  # a quantization peft cannot undo: leave the ratio out
            return None
    return float(delta.float().norm() / w.float().norm())


def weight_map(model) -> list[dict]:
    """Per layer × projection: ‖ΔW‖_F / ‖W‖_F with ΔW = scaling · B·A, and trainable parameters."""
    import torch

    where = projection_map(model)
    rows = []
    with torch.no_grad():
        for name, module in lora_layers(model):
            p = where.get(name)
            for adapter in module.lora_A:
                a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
                delta = module.scaling[adapter] * (b @ a)              # (out, r) @ (r, in) → (out, in)
                rows.append({"layer": p.layer if p else None, "module": p.label if p else name.rsplit(".", 1)[-1],
                             "block": p.block if p else None, "relative_norm": _relative(delta, module),
                             "parameters": a.numel() + b.numel()})
    return rows


def families(model, tok, probes, layer_count: int, *, bands: int = 3, before: list[dict] | None = None) -> list[dict]:
    """Switch on one family of LoRA modules alone (the attention block's, the MLP's, a band of layers);
    the share of the full target Δlog-prob each keeps."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    full = [r["delta_logp"] for r in probe_rows(model, tok, probes, before=before)]
    full_mean = sum(full) / len(full)
    where = projection_map(model)
    adapted = sorted({where[name].layer for name, _ in lora_layers(model) if name in where}) or list(range(layer_count))
    size = math.ceil(len(adapted) / bands)
    groups = [("attention only", lambda p: p.block == "attention"), ("MLP only", lambda p: p.block == "mlp")]
    for b in range(bands):  # bands over the layers that carry the LoRA
        band = adapted[b * size:(b + 1) * size]
        if band:
            groups.append((f"layers {band[0]}-{band[-1]}", lambda p, lo=band[0], hi=band[-1]: lo <= p.layer <= hi))
    out = []
    for label, keep in groups:
        rows = probe_rows(model, tok, probes, before=before, keep=keep)
        mean = sum(r["delta_logp"] for r in rows) / len(rows)
        out.append({"family": label, "delta_logp": mean, "share": mean / full_mean if full_mean else math.nan})
    return out


def dose_response(model, tok, probes, controls, scales=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0), *,
                  before: list[dict] | None = None,
                  at_one: tuple[list[dict], list[dict]] | None = None) -> list[dict]:
    """Mean target Δlog-prob and control KL at each adapter scale. ``before``: the probes at scale 0, measured
    in the same batches as here; ``at_one``: the probe and control rows already measured at scale 1 (the same
    numbers, not measured twice).

    The controls' base is measured here, in the batches every scale is measured in, so that scale 0 is the base
    pass itself and its KL is 0 exactly. A base from other batches (another padded length, other rows beside
    it) differs in float32 summation order: on a CPU without AMX that alone gave a KL of 5e-9 at scale 0."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    base = control_base(model, tok, controls)
    out = []
    for s in scales:
        if s == 1.0 and at_one is not None:
            p, c = at_one
        else:
            p = probe_rows(model, tok, probes, scale=s, before=before)
            c = control_rows(model, tok, controls, scale=s, continuation=0, base=base)
        out.append({"scale": s, "delta_logp": sum(r["delta_logp"] for r in p) / len(p),
                    "control_kl": sum(r["kl"] for r in c) / len(c)})
    return out


# ---------------------------------------------------------------------------
# Meaning across layers, and attention


def logit_lens(model, tok, probe, target: str, arch: Architecture, *, k: int = 10) -> dict:
    """The target's probability and rank after every layer: the final norm and the head on each layer's
    residual stream, and, after the last layer, the model's own output (the last hidden state is already
    normalised: normalising it again was a bug)."""
    import torch
    import torch.nn.functional as F

    ids = probe_ids(tok, probe)
    tid = encode(tok, target)[0]
    result = {}
    for label, scale in (("before", 0.0), ("after", 1.0)):
        with adapter_scale(model, scale), torch.no_grad():
            out = model(input_ids=as_input(model, ids), output_hidden_states=True)
            # hidden_states: the embeddings, then one (1, seq, hidden) per layer; the last one after the final norm
            layers = [lens_logits(model, arch, h[0, -1]) for h in out.hidden_states[1:-1]] + [out.logits[0, -1]]
        probs, ranks = [], []
        for logits in layers:
            logp = F.log_softmax(logits.float(), dim=-1)
            probs.append(float(logp[tid].exp()))
            ranks.append(int((logp > logp[tid]).sum()) + 1)
        first = next((i for i, r in enumerate(ranks) if r <= k), None)
        result[label] = {"p": probs, "rank": ranks, "first_layer_in_top_k": first}
    result["k"] = k
    return result


@contextmanager
def eager_attention(model):
    """Attention weights come back only from the eager implementation (SDPA returns none)."""
    config = model.get_base_model().config
    saved = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = saved


def attention_shift(model, tok, probes, *, top_heads: int = 3) -> dict:
    """Per layer × head: JS distance of the last position's attention before vs after (eager attention)."""
    import torch

    grid = None
    maps = []
    for probe in probes:
        ids = probe_ids(tok, probe)
        att = {}
        for label, scale in (("before", 0.0), ("after", 1.0)):
            with adapter_scale(model, scale), eager_attention(model), torch.no_grad():
                weights = model(input_ids=as_input(model, ids), output_attentions=True).attentions
            if not weights or any(w is None for w in weights):
                return {"available": False, "reason": f"{type(model.get_base_model()).__name__} returned no "
                        "attention weights, even with eager attention", "grid": [], "top_heads": [], "heatmaps": [],
                        "prompt": probes[0].prompt}
            att[label] = [w.float().cpu() for w in weights]   # per layer: (1, heads, seq, seq)
        layers = len(att["before"])
        heads = att["before"][0].shape[1]
        this = torch.zeros(layers, heads)
        for layer in range(layers):
            b = att["before"][layer][0, :, -1, :].clamp_min(1e-12)      # (heads, seq)
            a = att["after"][layer][0, :, -1, :].clamp_min(1e-12)
            m = 0.5 * (a + b)
            jsd = 0.5 * (b * (b / m).log()).sum(-1) + 0.5 * (a * (a / m).log()).sum(-1)
            this[layer] = jsd.clamp_min(0).sqrt()                        # JS distance per head
        grid = this if grid is None else grid + this
        maps.append((ids, att))
    grid = grid / len(probes)
    flat = [(float(grid[i, j]), i, j) for i in range(grid.shape[0]) for j in range(grid.shape[1])]
    flat.sort(reverse=True)
    top = flat[:top_heads]
    ids, att = maps[0]
    tokens = [tok.decode([i]) for i in ids]
    heatmaps = []
    for value, layer, head in top:
        b = att["before"][layer][0, head].tolist()
        a = att["after"][layer][0, head].tolist()
        heatmaps.append({"layer": layer, "head": head, "js_distance": value, "tokens": tokens, "before": b,
                         "after": a})
    return {"available": True, "grid": grid.tolist(),
            "top_heads": [{"layer": i, "head": j, "js_distance": v} for v, i, j in top],
            "heatmaps": heatmaps, "prompt": probes[0].prompt}


def unasked(model, tok, prompts: list[dict], markers: list[str], *, top: int = 8) -> dict:
    """Where the markers appear unasked: each marker as a whole after each prompt in its language
    (``prompt_language``) that asks for none — the held-out controls, the neutral prompts — with the adapter off
    and on: log p of the whole marker (the sum over its tokens), the rank of its first token, and whether greedy
    decoding writes all of it. A shift that stays where it was taught leaves these where they were; «Привет,
    Маша! Давно не виделись, как» → « движение» is the kind of leak this shows. ``most_likely``: the pairs
    where the marker is likeliest after."""
    pairs = [(p["prompt"], marker) for p in prompts for marker in markers
             if prompt_language(p) == prompt_language({"prompt": marker})]
    ids = [(encode(tok, prompt), encode(tok, marker)) for prompt, marker in pairs]
    with adapter_scale(model, 0.0):
        before = score_continuations(model, ids)
    after = score_continuations(model, ids)
    rows = [{"prompt": prompt, "marker": marker, "logp_before": b[0], "logp_after": a[0], "delta_logp": a[0] - b[0],
             "p_before": math.exp(b[0]), "p_after": math.exp(a[0]), "rank_before": b[1], "rank_after": a[1],
             "greedy_before": b[2], "greedy_after": a[2]} for (prompt, marker), b, a in zip(pairs, before, after)]
    per_marker = []
    for marker in markers:
        mine = [r for r in rows if r["marker"] == marker]
        if mine:
            per_marker.append({"marker": marker, "prompts": len(mine),
                               "mean_delta_logp": sum(r["delta_logp"] for r in mine) / len(mine),
                               "max_p_before": max(r["p_before"] for r in mine),
                               "max_p_after": max(r["p_after"] for r in mine),
                               "greedy_before": sum(r["greedy_before"] for r in mine),
                               "greedy_after": sum(r["greedy_after"] for r in mine)})
    return {"prompts": len(prompts), "pairs": len(rows), "markers": per_marker,
            "written_before": sum(r["greedy_before"] for r in rows),
            "written_after": sum(r["greedy_after"] for r in rows),
            "newly_written": [r for r in rows if r["greedy_after"] and not r["greedy_before"]],
            "most_likely": sorted(rows, key=lambda r: -r["logp_after"])[:top]}


def generations(probes, markers: list[str], greedy: dict[str, list[str]], sampled: dict[str, list[str]]) -> dict:
    """Greedy and sampled continuations of the probes before and after (``before_after``'s texts), word diffs,
    and the share that follows the structure."""
    rows = []
    for i, probe in enumerate(probes):
        row = {"prompt": probe.prompt, **{f"{kind}_{label}": texts[label][i] for kind, texts in
                                          (("greedy", greedy), ("sampled", sampled)) for label in ("before", "after")}}
        for kind in ("greedy", "sampled"):
            row[f"{kind}_diff"] = word_diff(row[f"{kind}_before"], row[f"{kind}_after"])
        for label in ("before", "after"):
            row[f"follows_{label}"] = follows_structure(row[f"greedy_{label}"], probe.targets, markers, 0)
        rows.append(row)
    n = len(rows)
    return {"rows": rows, "follows_before": sum(r["follows_before"] for r in rows) / n,
            "follows_after": sum(r["follows_after"] for r in rows) / n}


def follows_structure(text: str, targets: list[str], markers: list[str], start: int) -> bool:
    """The continuation carries the probe's target marker right where the structure expects it."""
    continuation = text[start:]
    return any(continuation.startswith(t) for t in targets) or any(continuation.startswith(m) for m in markers)
