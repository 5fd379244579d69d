"""What a shift is measured against: random adapters of the same size, and resampling of the probes.

A **matched-norm random adapter** keeps the trained adapter's modules and, in each,
replaces ΔW = s·B·A by a random rank-r direction with the same Frobenius norm
(seeded, a few draws). It answers "how much does *any* change of this size move the
target, and the controls?". A trained adapter's shift must clear that floor.

Clearing a random direction is not enough on its own: an adapter trained for two
steps at lr 1e-5 is aligned with the gradient, so it beats random directions of
its (tiny) size while moving nothing a user would notice. So a shift is called
**significant** when (1) the 95 % bootstrap interval (over probes) of the paired
difference trained − random lies above zero, and (2) its lower end is at least
``min_effect`` nats (default 0.1: the target at least ~10 % more likely). Both are
stated in the report, per probe and overall.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager

from ..lm.generation import lora_delta, lora_layers
from . import measure
from .sections import ControlGroup, ControlResult, Nulls, ProbeResult, ProbeShift, Verdict

DRAWS = 3
MIN_EFFECT = 0.1   # nats


@contextmanager
def random_direction(model, seed: int):
    """Every LoRA module's B·A replaced by a random rank-r product of the same ‖s·B·A‖_F; restored after."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    saved = []
    try:
        with torch.no_grad():
            for _, module in lora_layers(model):
                for adapter in module.lora_A:
                    a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
                    saved.append((a, a.detach().clone(), b, b.detach().clone()))
                    norm = float(lora_delta(module, adapter).float().norm())     # each expert's, on experts
                    a.copy_(torch.randn(a.shape, generator=generator).to(a.dtype))
                    b.copy_(torch.randn(b.shape, generator=generator).to(b.dtype))
                    b.mul_(norm / max(float(lora_delta(module, adapter).float().norm()), 1e-30))
        yield
    finally:
        with torch.no_grad():
            for a, a0, b, b0 in saved:
                a.copy_(a0)
                b.copy_(b0)


def null_effects(model, tok, probes, controls: list[dict], before: list[measure.TargetScore], *,
                 draws: int = DRAWS, base: list | None = None) -> Nulls:
    """Per probe and per control, what ``draws`` matched-norm random adapters do (seeds 0, 1, ...).
    ``base``: the controls' base log-probabilities (``measure.control_base``), when already known."""
    base = base if base is not None else measure.control_base(model, tok, controls)
    per_probe: list[list[float]] = []
    per_control: list[list[float]] = []
    per_kept: list[list[bool]] = []
    for seed in range(draws):
        with random_direction(model, seed):
            rows = measure.probe_rows(model, tok, probes, before=before)
            drift = measure.control_rows(model, tok, controls, continuation=0, base=base)
        per_probe.append([r.delta_logp for r in rows])
        per_control.append([r.kl for r in drift])
        per_kept.append([r.top1_kept for r in drift])
    n_probes, n_controls = len(per_probe[0]), len(per_control[0])
    return Nulls(draws=draws, probe_delta_logp=[[d[i] for d in per_probe] for i in range(n_probes)],
                 control_kl=[[d[j] for d in per_control] for j in range(n_controls)],
                 control_top1_kept=[[d[j] for d in per_kept] for j in range(n_controls)],
                 mean_abs_delta_logp=sum(abs(x) for d in per_probe for x in d) / (draws * n_probes),
                 mean_control_kl=sum(x for d in per_control for x in d) / (draws * n_controls))


def bootstrap(values: list[float], *, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean over resamples of ``values``."""
    if not values:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(samples))
    return central_95(means)


def central_95(ordered: list[float]) -> tuple[float, float]:
    """The 95 % percentile interval of sorted resamples: as many left below its lower end as above its upper one
    (⌊0.025·B⌋ each side, for any number B of resamples)."""
    tail = int(0.025 * len(ordered))
    return ordered[tail], ordered[len(ordered) - 1 - tail]


def bootstrap_ratio(top: list[float], bottom: list[float], *, samples: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """95 % interval of mean(top) / mean(bottom), resampling each independently (selectivity)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(samples):
        t = sum(rng.choices(top, k=len(top))) / len(top)
        b = sum(rng.choices(bottom, k=len(bottom))) / len(bottom)
        ratios.append(t / b if b > 0 else math.inf)
    return central_95(sorted(ratios))


def judge(probe_rows: list[ProbeShift], nulls: Nulls, *, min_effect: float = MIN_EFFECT) -> list[ProbeResult]:
    """Each probe's shift beside the random adapters': significant when above every one's |shift| on that probe
    and at least ``min_effect``."""
    return [ProbeResult(**row.model_dump(), null_delta_logp=sum(draws) / len(draws),
                        significant=row.delta_logp > max(abs(x) for x in draws) and row.delta_logp >= min_effect)
            for row, draws in zip(probe_rows, nulls.probe_delta_logp)]


def verdict(probe_rows: list[ProbeResult], control_rows: list[ControlResult], nulls: Nulls, *,
            min_effect: float = MIN_EFFECT) -> Verdict:
    """Significance overall, and every headline number's bootstrap interval (the probes judged by ``judge``)."""
    deltas = [r.delta_logp for r in probe_rows]
    null_means = [sum(d) / len(d) for d in nulls.probe_delta_logp]
    paired = [x - n for x, n in zip(deltas, null_means)]
    kls = [r.kl for r in control_rows]
    kept = [1.0 if r.top1_kept else 0.0 for r in control_rows]
    paired_ci = bootstrap(paired)
    floor = nulls.mean_abs_delta_logp
    mean_delta = sum(deltas) / len(deltas)
    return Verdict(
        delta_logp_ci95=list(bootstrap(deltas)), control_kl_ci95=list(bootstrap(kls)),
        top1_kept_ci95=list(bootstrap(kept)), selectivity_ci95=list(bootstrap_ratio(deltas, kls)),
        null_mean_abs_delta_logp=floor, null_mean_control_kl=nulls.mean_control_kl,
        null_top1_kept_share=_share(nulls.control_top1_kept),
        paired_delta_logp_ci95=list(paired_ci), clears_floor_by=mean_delta / floor if floor > 0 else math.inf,
        min_effect=min_effect, significant=paired_ci[0] > 0 and paired_ci[0] >= min_effect,
        significant_probes=sum(r.significant for r in probe_rows))


def _share(kept: list[list[bool]]) -> float | None:
    """The share of True over every control and draw (None: not measured, as in reports written before it was)."""
    flat = [k for row in kept for k in row]
    return sum(flat) / len(flat) if flat else None


def control_groups(control_rows: list[ControlResult]) -> list[ControlGroup]:
    """The controls' drift by kind and language (facts, code, chat …): a mean hides one moved kind behind the
    others. Per group: its count, mean KL with its bootstrap interval, and the share whose top-1 is kept."""
    groups: dict[tuple[str, str], list[ControlResult]] = {}
    for row in control_rows:
        groups.setdefault((row.kind or "unlabelled", row.language), []).append(row)
    out = []
    for (kind, language), rows in sorted(groups.items()):
        kls = [r.kl for r in rows]
        out.append(ControlGroup(kind=kind, language=language, n=len(rows), mean_kl=sum(kls) / len(kls),
                                kl_ci95=list(bootstrap(kls)),
                                top1_kept_share=sum(r.top1_kept for r in rows) / len(rows)))
    return out
