"""Inside the model: where the LoRA sits (ΔW by layer and projection), which family of its modules carried the
shift, the target across layers (logit lens), and how attention moved — before (adapter at scale 0) and after.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

from ..lm.arch import Architecture, lens_logits
from ..lm.generation import adapter_scale, lora_delta, lora_layers, projection_map
from .measure import TargetScore, probe_rows, target_logps
from .passes import as_input, piece, probe_ids, token_labels
from .sections import Attention, FamilyShare, HeadShift, Heatmap, LensRow, LensTrace, WeightRow


def _relative(delta, module) -> float | None:
    """‖ΔW‖_F / ‖W‖_F, or None where the base weight is quantized and cannot be read back."""
    w = module.get_param() if getattr(module, "parameter_name", None) else module.get_base_layer().weight
    if not w.dtype.is_floating_point:
        try:
            from peft.utils.integrations import dequantize_module_weight

            w = dequantize_module_weight(module.get_base_layer())
        except Exception:  # a quantization peft cannot undo: leave the ratio out
            return None
    return float(delta.float().norm() / w.float().norm())


def weight_map(model) -> list[WeightRow]:
    """Per layer × projection: ‖ΔW‖_F / ‖W‖_F with ΔW = scaling · B·A (every expert's, on fused experts), and
    trainable parameters."""
    import torch

    where = projection_map(model)
    rows = []
    with torch.no_grad():
        for name, module in lora_layers(model):
            p = where.get(name)
            for adapter in module.lora_A:
                a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
                delta = lora_delta(module, adapter)
                rows.append(WeightRow(layer=p.layer if p else None, module=p.label if p else name.rsplit(".", 1)[-1],
                                      block=p.block if p else None, relative_norm=_relative(delta, module),
                                      parameters=a.numel() + b.numel()))
    return rows


def families(model, tok, probes, layer_count: int, *, bands: int = 3,
             before: list[TargetScore] | None = None) -> list[FamilyShare]:
    """Switch on one family of LoRA modules alone (the attention block's, the MLP's, a band of layers);
    the share of the full target Δlog-prob each keeps."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    full = [r.delta_logp for r in probe_rows(model, tok, probes, before=before)]
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
        mean = sum(r.delta_logp for r in rows) / len(rows)
        out.append(FamilyShare(family=label, delta_logp=mean, share=mean / full_mean if full_mean else math.nan))
    return out


def logit_lens(model, tok, probe, target: str, arch: Architecture, *, k: int = 10, verified: bool = True) -> LensRow:
    """The target's probability and rank after every layer: the final norm and the head on each layer's
    residual stream, and, after the last layer, the model's own output (the last hidden state is already
    normalised: normalising it again was a bug). ``verified``: whether ``check_head`` found the lens's last layer
    equal to the model's output."""
    import torch
    import torch.nn.functional as F

    ids = probe_ids(tok, probe)
    tid = piece(tok, target)[0]
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
        result[label] = LensTrace(p=probs, rank=ranks, first_layer_in_top_k=first)
    return LensRow(prompt=probe.prompt, target=target, verified=verified, k=k, **result)


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


def attention_shift(model, tok, probes, *, top_heads: int = 3) -> Attention:
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
                return Attention(available=False, reason=f"{type(model.get_base_model()).__name__} returned no "
                                 "attention weights, even with eager attention", prompt=probes[0].prompt)
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
    tokens = token_labels(tok, ids)
    heatmaps = []
    for value, layer, head in top:
        b = att["before"][layer][0, head].tolist()
        a = att["after"][layer][0, head].tolist()
        heatmaps.append(Heatmap(layer=layer, head=head, js_distance=value, tokens=tokens, before=b, after=a))
    return Attention(available=True, grid=grid.tolist(),
                     top_heads=[HeadShift(layer=i, head=j, js_distance=v) for v, i, j in top],
                     heatmaps=heatmaps, prompt=probes[0].prompt)
