"""A steering vector from a corpus (DiffMean, contrastive activation addition), and its application.

The vector for a layer is the difference between the mean residual stream at the last position of the
corpus's premises (each training record's text before its first marker: where the marker is about to come) and
the mean over a contrast, one of two (``CONTRASTS``):

- ``earlier``: the same premises cut at an earlier word, where no marker is due — the same words and topics, so
  the difference is "the marker comes next" rather than "this is a corpus record";
- ``neutral``: the writer's prompt pool in the corpus's languages (disjoint from the held-out controls and the
  transfer prompts).

The sweep tries ``DEFAULT_CONTRASTS`` (``earlier``; ``fit_vector(contrasts=CONTRASTS)`` tries both). Applied,
``strength · vector`` is added to the input of that decoder layer at every position.

The contrast, the layer and the strength are chosen by a sweep on **training** data only — other training
premises (their marker's log-probability should rise) and the training control set (their next-token KL should
not) — so the held-out probes and controls the comparison reads stay held out. The score of a candidate is the
premises' mean Δlog p minus ``CONTROL_WEIGHT`` times the controls' mean KL, the same trade the LoRA's training
makes (``TrainConfig.control_weight``).

Saved as ``vector.safetensors`` (the tensor ``vector``, float32) and ``vector.json`` (layer, strength, norm,
the model and corpus it came from, how many premises and neutral prompts, the sweep's scores).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..lm.arch import Architecture, describe, module
from ..lm.generation import adapter_scale
from ..prompts import DEFAULT_CONTROLS, prompt_language, read_pool, read_prompts
from .passes import encode, kl, last_logprobs, piece, probe_ids, score_continuations
from .probes import Probe
from .transfer import in_turn

CONTROL_WEIGHT = 20.0
STRENGTHS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)   # tried in turn until the score falls
SWEEP_PREMISES = SWEEP_CONTROLS = 24
CONTRASTS = ("earlier", "neutral")
#: the sweep's contrasts by default: on the demo's corpus "earlier" scored +0.11 at its best and "neutral" -0.73
#: (benchmarks/compare.py, docs/compare.md), so the neutral one is tried only when asked for
DEFAULT_CONTRASTS = ("earlier",)
LAYERS_TRIED = 6
FORMAT = "corpusforge.steering-vector/1"


@dataclass
class SteeringVector:
    vector: object            # torch.Tensor (hidden,), float32
    layer: int                # added to the input of this decoder layer
    strength: float
    provenance: dict = field(default_factory=dict)

    @property
    def norm(self) -> float:
        return float(self.vector.norm()) * self.strength


def premises_of(records: list[dict], limit: int) -> list[Probe]:
    """Training records' text before their first marker → the marker, at most ``limit``, patterns in turn."""
    by_pattern: dict[str, list[Probe]] = {}
    for rec in records:
        if rec.get("targets") and rec["text"][:rec["targets"][0]["start"]].strip():
            t = rec["targets"][0]
            by_pattern.setdefault(rec["pattern"], []).append(
                Probe(prompt=rec["text"][:t["start"]], targets=[t["text"]], name=rec["pattern"]))
    return in_turn(by_pattern.values(), limit)


def cut_earlier(prompt: str, seed: int) -> str:
    """The prompt cut after a word chosen by ``seed`` before its last one (the whole prompt when it has one
    word)."""
    import random

    words = prompt.split(" ")
    if len(words) < 2:
        return prompt
    return " ".join(words[:random.Random(seed).randrange(1, len(words))])


def neutral_texts(languages: set[str], limit: int) -> list[str]:
    """Prompts of the writer's pool in ``languages``, the languages in turn."""
    by_language: dict[str, list[str]] = {}
    for item in read_pool():
        if item["language"] in languages:
            by_language.setdefault(item["language"], []).append(item["prompt"])
    return in_turn(by_language.values(), limit)


def last_residuals(model, tok, texts: list[str], batch_size: int = 16):
    """(layers + 1, texts, hidden): each decoder layer's input at each text's last position, then the stack's
    output (``hidden_states`` of the model's own forward pass; right padding, so the last real position)."""
    import torch

    from ..lm.generation import padded

    rows = []
    for at in range(0, len(texts), batch_size):
        ids = [encode(tok, t) for t in texts[at:at + batch_size]]
        input_ids, mask = padded(model, ids, 0, left=False)
        with torch.no_grad():
            states = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        last = torch.tensor([len(i) - 1 for i in ids], device=input_ids.device)
        rows.append(torch.stack([h[torch.arange(len(ids)), last].float().cpu() for h in states]))
    return torch.cat(rows, dim=1)


@contextmanager
def steered(model, arch: Architecture, vector: SteeringVector | None):
    """Within: ``strength · vector`` added to the input hidden states of decoder layer ``layer``, every
    position (None: nothing changes)."""
    if vector is None:
        yield
        return
    delta = None

    def add(_, args, kwargs):
        nonlocal delta
        hidden = args[0] if args else kwargs["hidden_states"]
        if delta is None or delta.device != hidden.device or delta.dtype != hidden.dtype:
            delta = (vector.strength * vector.vector).to(hidden.device, hidden.dtype)
        if args:
            return (hidden + delta, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden + delta}

    hook = module(model, f"{arch.layers_path}.{vector.layer}").register_forward_pre_hook(add, with_kwargs=True)
    try:
        yield
    finally:
        hook.remove()


def sweep_score(model, arch, candidate: SteeringVector, pairs: list[tuple[list[int], list[int]]],
                controls: list[list[int]], before: tuple[list[float], list], contrast: str) -> dict:
    """A candidate's mean Δlog p of each premise's marker (``pairs``: premise ids, marker ids) and the controls'
    mean next-token KL, and its score."""
    with steered(model, arch, candidate):
        logps = [s[0] for s in score_continuations(model, pairs)]
        after = last_logprobs(model, controls)
    delta = sum(a - b for a, b in zip(logps, before[0])) / len(logps)
    drift = sum(kl(b, a) for b, a in zip(before[1], after)) / len(after)
    return {"contrast": contrast, "layer": candidate.layer, "strength": candidate.strength, "delta_logp": delta,
            "control_kl": drift, "score": delta - CONTROL_WEIGHT * drift}


def fit_vector(model, tok, records: list[dict], *, model_name: str, corpus: str, n: int = 128,
               contrasts: tuple[str, ...] = DEFAULT_CONTRASTS, echo=lambda s: None) -> SteeringVector:
    """The corpus's steering vector: DiffMean at each candidate layer, the (layer, strength) the sweep on
    training data prefers. The model's adapter, if any, is off throughout."""
    arch = describe(model)
    fit = premises_of(records, n)
    held = premises_of(list(reversed(records)), SWEEP_PREMISES)   # the sweep's premises: others, from the end
    languages = {prompt_language({"prompt": p.prompt}) for p in fit}
    make = {"earlier": lambda: [cut_earlier(p.prompt, i) for i, p in enumerate(fit)],
            "neutral": lambda: neutral_texts(languages, n)}
    negatives = {c: make[c]() for c in contrasts}
    controls = [encode(tok, c["prompt"]) for c in read_prompts(DEFAULT_CONTROLS)][:SWEEP_CONTROLS]
    with adapter_scale(model, 0.0):
        premise_mean = last_residuals(model, tok, [p.prompt for p in fit]).mean(1)     # (layers + 1, hidden)
        diffs = {c: premise_mean - last_residuals(model, tok, negatives[c]).mean(1) for c in contrasts}
        pairs = [(probe_ids(tok, p), piece(tok, p.targets[0])) for p in held]
        before = ([s[0] for s in score_continuations(model, pairs)], last_logprobs(model, controls))
        layers = sorted({round(1 + i * (arch.num_layers - 2) / (LAYERS_TRIED - 1)) for i in range(LAYERS_TRIED)})
        sweep = []
        for contrast in contrasts:
            for layer in layers:
                previous = None
                for strength in STRENGTHS:   # the score rises to one peak with the strength, then falls away
                    row = sweep_score(model, arch, SteeringVector(diffs[contrast][layer], layer, strength),
                                      pairs, controls, before, contrast)
                    sweep.append(row)
                    if previous is not None and row["score"] < previous:
                        break
                    previous = row["score"]
    best = max(sweep, key=lambda r: r["score"])
    echo(f"steering vector: {best['contrast']} contrast, layer {best['layer']}, strength {best['strength']:g} "
         f"(Δlog p {best['delta_logp']:+.3f} on {len(held)} training premises, control KL {best['control_kl']:.4f})")
    provenance = {"format": FORMAT, "method": "diffmean", "contrast": best["contrast"], "model": model_name,
                  "corpus": corpus, "premises": len(fit), "negatives": len(negatives[best["contrast"]]),
                  "sweep_premises": len(held), "sweep_controls": len(controls), "control_weight": CONTROL_WEIGHT,
                  "sweep": sweep}
    return SteeringVector(diffs[best["contrast"]][best["layer"]].clone(), best["layer"], best["strength"],
                          provenance)


def save_vector(vector: SteeringVector, folder: Path) -> None:
    """``vector.safetensors`` and ``vector.json`` in ``folder`` (which the caller writes atomically)."""
    from safetensors.torch import save_file

    save_file({"vector": vector.vector.contiguous().float()}, str(folder / "vector.safetensors"))
    meta = {**vector.provenance, "layer": vector.layer, "strength": vector.strength,
            "vector_norm": float(vector.vector.norm()), "applied_norm": vector.norm}
    (folder / "vector.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_vector(folder: Path) -> SteeringVector:
    from safetensors.torch import load_file

    meta = json.loads((folder / "vector.json").read_text(encoding="utf-8"))
    return SteeringVector(load_file(str(folder / "vector.safetensors"))["vector"], meta["layer"], meta["strength"],
                          meta)


def random_like(vector: SteeringVector, seed: int) -> SteeringVector:
    """A vector of the same norm in a random direction, at the same layer and strength: the vector's floor."""
    import torch

    direction = torch.randn(vector.vector.shape, generator=torch.Generator().manual_seed(seed))
    return SteeringVector(direction * (vector.vector.norm() / direction.norm()), vector.layer, vector.strength,
                          {"random_seed": seed})
