"""LoRA settings → a peft ``LoraConfig``, checked against the model's real modules.

W' = W + (alpha / r) · B·A on the chosen projections: attention (q, k, v, o:
what a token looks at and what it takes from it) and the MLP (gate, up, down:
how a token transforms its own meaning), in the chosen layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import TrainError

PRESETS = {
    "attention": ["q_proj", "k_proj", "v_proj"],
    "attention+mlp": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
}
SHORT = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
         "down": "down_proj"}


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(PRESETS["attention+mlp"]))
    layers: list[int] | str | None = None    # None: every layer; "last-half" is resolved against the model
    rslora: bool = False
    dora: bool = False


def parse_targets(value: str | list[str]) -> list[str]:
    """``attention``, ``attention+mlp``, ``mlp``, or module names (``q,v,gate`` or ``q_proj,v_proj``)."""
    if isinstance(value, list):
        names = value
    elif value in PRESETS:
        return list(PRESETS[value])
    else:
        names = [v.strip() for v in value.split(",") if v.strip()]
    return [SHORT.get(n, n) for n in names]


MAX_LAYERS = 10_000   # no model has more; a bound checked before any range is expanded


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


def linear_module_names(model) -> list[str]:
    """The names of the model's Linear projections inside its layers (what LoRA can target)."""
    import torch

    names = set()
    for full, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in f".{full}":
            names.add(full.rsplit(".", 1)[-1])
    return sorted(names)


def num_layers(model) -> int:
    return int(model.config.num_hidden_layers)


def peft_config(settings: LoraSettings, model):
    """Check the settings against ``model`` and build the peft LoraConfig."""
    from peft import LoraConfig

    if settings.rank < 1:
        raise TrainError(f"--rank must be at least 1, got {settings.rank}")
    available = linear_module_names(model)
    unknown = [t for t in settings.targets if t not in available]
    if unknown:
        raise TrainError(f"--targets: the model has no module(s) {unknown}; its linear modules are "
                         f"{', '.join(available)} (presets: {', '.join(PRESETS)})")
    n = num_layers(model)
    if isinstance(settings.layers, str):
        settings.layers = parse_layers(settings.layers, n)
    if settings.layers is not None:
        bad = [i for i in settings.layers if not 0 <= i < n]
        if bad:
            raise TrainError(f"--layers {bad[0]}{'…' if len(bad) > 1 else ''} out of range: the model has layers "
                             f"0-{n - 1}")
    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.targets), layers_to_transform=settings.layers,
                      use_rslora=settings.rslora, use_dora=settings.dora, bias="none", task_type="CAUSAL_LM")
