"""LoRA settings → a peft ``LoraConfig``, resolved against the model's own anatomy (``corpusforge.lm.arch``).

W' = W + (alpha / r) · B·A on the chosen projections of the chosen decoder layers.
``--targets attention`` is every projection of each layer's attention block (q, k, v
and the output, separate or fused: what a token looks at and what it takes from the
others), ``mlp`` the rest of the layer's projections (how a token transforms its own
meaning), ``attention+mlp`` both; or module names (``q,v,gate``, ``c_attn``,
``mlp.c_proj``). The resolved projections are given to peft by their full names, so
the same preset means the same thing on every architecture; a mixture of experts'
fused expert parameters go to peft's ``target_parameters`` (no dropout there), and
its router is left alone (``lm.arch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import TrainError
from ..lm.arch import Architecture, Projection, describe

MAX_LAYERS = 10_000   # no model has more; a bound checked before any range is expanded


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str | list[str] = "attention+mlp"
    layers: list[int] | str | None = None    # None: every layer; "last-half" is resolved against the model
    rslora: bool = False
    dora: bool = False


@dataclass
class Resolved:
    """What the settings mean on one model: the layers and projections LoRA goes on."""

    arch: Architecture
    layers: list[int] | None                # None: all of them
    projections: list[Projection] = field(default_factory=list)
    config: object = None                   # peft.LoraConfig

    def trainable_parameters(self, rank: int) -> int:
        return sum(p.lora_parameters(rank) for p in self.projections)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(p.label for p in self.projections))


def parse_layers(value: str | list[int] | None, num_layers: int | None = None) -> list[int] | None:
    """``20-29``, ``0,5,7``, ``20-25,28``, ``last-half``, ``last:N``, or None / ``all`` (every layer).

    ``last-half`` and ``last:N`` depend on the model's depth (``num_layers``); with it, every range is
    checked against the model before it is expanded.
    """
    if value is None or isinstance(value, list):
        return value
    value = value.strip()
    if value in ("", "all"):
        return None
    limit = num_layers if num_layers is not None else MAX_LAYERS
    relative = re.fullmatch(r"last(?:-half|:(\d{1,6}))", value)
    if relative:
        if num_layers is None:
            raise TrainError(f"--layers {value} needs the model's number of layers")
        count = num_layers - num_layers // 2 if relative.group(1) is None else int(relative.group(1))
        if not 1 <= count <= num_layers:
            raise TrainError(f"--layers {value}: the model has {num_layers} layers")
        return list(range(num_layers - count, num_layers))
    out: set[int] = set()
    for part in value.split(","):
        m = re.fullmatch(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?", part)
        if not m:
            raise TrainError(f"--layers: expected ranges like 20-29 or 0,5,7, got {value[:60]!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise TrainError(f"--layers: range {part.strip()!r} runs backwards")
        if hi >= limit:
            where = f"the model has layers 0-{num_layers - 1}" if num_layers is not None else \
                f"no model has more than {MAX_LAYERS:,} layers"
            raise TrainError(f"--layers {part.strip()} out of range: {where}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def resolve(settings: LoraSettings, model) -> Resolved:
    """Check the settings against ``model``'s anatomy and build the peft LoraConfig."""
    from peft import LoraConfig

    if settings.rank < 1:
        raise TrainError(f"--rank must be at least 1, got {settings.rank}")
    arch = describe(model)
    layers = parse_layers(settings.layers, arch.num_layers) if isinstance(settings.layers, str) else settings.layers
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < arch.num_layers]
        if bad:
            raise TrainError(f"--layers {bad[0]}{'…' if len(bad) > 1 else ''} out of range: the model has layers "
                             f"0-{arch.num_layers - 1}")
    projections = arch.resolve(settings.targets, layers)
    if not projections:
        raise TrainError(f"--targets {settings.targets}: no such projection in layers {layers}; the model's are "
                         f"{', '.join(arch.labels())}")
    experts = [p.name for p in projections if p.kind == "Experts"]
    if experts and (settings.dropout or settings.dora):
        raise TrainError(f"--targets {settings.targets} takes fused expert parameters ({experts[0]} …), and peft "
                         "adapts those without dropout or DoRA", hint="pass --dropout 0 and no --dora, or --targets "
                                                                      "attention")
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=[p.name for p in projections if p.kind != "Experts"],
                        target_parameters=experts or None, use_rslora=settings.rslora,
                        use_dora=settings.dora, bias="none", task_type="CAUSAL_LM",
                        fan_in_fan_out=all(p.kind == "Conv1D" for p in projections))
    return Resolved(arch, layers, projections, config)


def describe_plan(resolved: Resolved, rank: int) -> str:
    """The resolution, layer by layer, for ``train --dry-run``."""
    arch = resolved.arch
    lines = [f"{arch.model_type}: {arch.num_layers} decoder layers at {arch.layers_path}; linear modules per layer: "
             f"{', '.join(arch.labels())}"]
    by_layer: dict[int, list[Projection]] = {}
    for p in resolved.projections:
        by_layer.setdefault(p.layer, []).append(p)
    for layer, projections in sorted(by_layer.items()):
        parts = [f"{p.label} ({p.in_features}→{p.out_features}{_kind_note(p)})" for p in projections]
        lines.append(f"  layer {layer:>3}: {', '.join(parts)}")
    lines.append(f"LoRA r={rank} on {len(resolved.projections)} modules: "
                 f"{resolved.trainable_parameters(rank):,} trainable parameters")
    if arch.peft_defaults:
        agree = all(d in {p.short for p in arch.projections} for d in arch.peft_defaults)
        lines.append(f"cross-check: peft's default targets for {arch.model_type} ({', '.join(arch.peft_defaults)}) are "
                     f"{'among' if agree else 'NOT all among'} the projections found here")
    return "\n".join(lines)


def _kind_note(p: Projection) -> str:
    return {"Conv1D": ", Conv1D", "Experts": f", {p.experts} experts"}.get(p.kind, "")
